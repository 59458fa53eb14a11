##! Periodic measurement of a Zeek node's own state, for zeek-probe.
##!
##! Every :zeek:see:`ZeekProbe::stats_interval` each node (worker, proxy,
##! manager, logger or a standalone Zeek) measures:
##!
##! * the footprint of every global container variable
##!   (:zeek:see:`global_container_footprints`, Zeek 5.0+) and, where it still
##!   exists (Zeek < 5.1), the byte size of every global (``global_sizes``);
##! * cheap counters from the ``get_*_stats()`` built-ins (process memory and
##!   CPU, events, timers, connections, packets, reassembly, files, DNS,
##!   threads, weirds);
##! * the cost of doing so (wall time, and process CPU time).
##!
##! It writes ``zeek_probe_memory.log`` (one row per global variable) and
##! ``zeek_probe_stats.log`` (one row per run), and raises
##! :zeek:see:`ZeekProbe::run_done` so that ``publish.zeek`` can send the run
##! to zeek-probe over ZeroMQ.
##!
##! Cost: ``global_container_footprints()`` walks every element of every global
##! table, set and vector, on Zeek's main thread: while it runs, the node
##! processes no packets and no events. On a node with tables of millions of
##! entries a run can take hundreds of milliseconds or more. That is why the
##! default interval is one minute, why the cost of every run is logged (``cost``
##! and ``cpu_cost`` in ``zeek_probe_stats.log``), and why
##! :zeek:see:`ZeekProbe::measure_globals` can turn the walk off while keeping
##! the cheap counters.

@load base/frameworks/cluster
@load base/frameworks/logging

module ZeekProbe;

export {
	redef enum Log::ID += {
		MEMORY_LOG,
		STATS_LOG
	};

	## Policy hooks for the two streams.
	global log_policy_memory: Log::PolicyHook;
	global log_policy_stats: Log::PolicyHook;

	## How often each node measures itself. The footprint walk is expensive
	## on large tables (see above): raise this on big deployments.
	option stats_interval = 1min;

	## Delay before the first run after start-up.
	option initial_delay = 10sec;

	## Smallest footprint (elements) of a global to report; 0 reports every
	## global container. Where only byte sizes are known (``global_sizes``,
	## Zeek < 5.1) the size is compared instead.
	option min_footprint = 100;

	## Set to F to skip the expensive walk over the globals and keep only
	## the cheap counters.
	option measure_globals = T;

	## One global variable as measured. This is part of the wire contract
	## with zeek-probe (it travels inside :zeek:see:`ZeekProbe::memory_stats`
	## as a list of field values, so field order and types matter, not
	## names). The first field is the module; it cannot be called
	## ``module`` because that is a Zeek keyword.
	type MemoryEntry: record {
		## Module part of the global's name (``GLOBAL`` when it has none).
		module_name: string;
		## Variable part of the global's name.
		variable: string;
		## Approximate number of values the global holds, directly or not
		## (:zeek:see:`global_container_footprints`).
		footprint: count &optional;
		## Bytes, from ``global_sizes`` (only on Zeek < 5.1).
		size: count &optional;
	};

	## The event zeek-probe receives: one per run and node. Wire contract
	## (zeek-probe decodes exactly this): ``counters`` holds the cheap
	## counters under the names of the count fields of
	## :zeek:see:`ZeekProbe::StatsInfo`, plus ``cpu_cost_us`` when measured.
	global memory_stats: event(node: string, run: count, cost: interval,
	    entries: vector of MemoryEntry, counters: table[string] of count);

	## Raised locally after each run with what :zeek:see:`ZeekProbe::memory_stats`
	## carries; ``publish.zeek`` forwards it. A separate local event keeps a
	## node that receives ``memory_stats`` from ever publishing it again.
	global run_done: event(node: string, run: count, cost: interval,
	    entries: vector of MemoryEntry, counters: table[string] of count);

	## A row of ``zeek_probe_memory.log``. The ``module_name`` field is
	## written as the column ``module`` (see the filters' field name map).
	type MemoryInfo: record {
		## Wall-clock time at the start of the run.
		ts: time &log;
		## Run number since this node started, from 1.
		run: count &log;
		## Cluster node name, or ``standalone``.
		node: string &log;
		## Module of the global (``GLOBAL`` when its name has no ``::``).
		module_name: string &log;
		## Variable name without its module.
		variable: string &log;
		## Footprint in elements.
		footprint: count &log &optional;
		## Size in bytes (Zeek < 5.1 only).
		size: count &log &optional;
	};

	## A row of ``zeek_probe_stats.log``: one per run. Every count field is
	## also sent in the ``counters`` table of :zeek:see:`ZeekProbe::memory_stats`
	## under its field name (except ``run`` and ``globals``). Counters are
	## optional so that a version without one of the built-ins still logs;
	## every one of them exists on Zeek 6.0 through 8.2.
	type StatsInfo: record {
		## Wall-clock time at the start of the run.
		ts: time &log;
		## Run number since this node started, from 1.
		run: count &log;
		## Cluster node name, or ``standalone``.
		node: string &log;
		## Wall time the measurement took.
		cost: interval &log;
		## Process CPU time (user + system) spent during the measurement.
		## Process-wide: CPU used by Zeek's other threads during the run is
		## included, so this is an upper bound.
		cpu_cost: interval &log &optional;
		## Number of globals reported in ``zeek_probe_memory.log``.
		globals: count &log;

		## get_proc_stats(): memory as Zeek reports it (bytes).
		mem_bytes: count &log &optional;
		## get_proc_stats(): page faults without and with I/O.
		minor_faults: count &log &optional;
		major_faults: count &log &optional;
		## get_proc_stats(): involuntary context switches.
		involuntary_context_switches: count &log &optional;
		## get_proc_stats(): process CPU time since start, microseconds.
		user_time_us: count &log &optional;
		system_time_us: count &log &optional;

		## get_event_stats(): events queued and dispatched since start.
		events_queued: count &log &optional;
		events_dispatched: count &log &optional;

		## get_timer_stats(): pending timers now, scheduled since start.
		timers_current: count &log &optional;
		timers_cumulative: count &log &optional;

		## get_conn_stats(): connections ever, and in memory now per proto.
		conns_total: count &log &optional;
		tcp_conns: count &log &optional;
		udp_conns: count &log &optional;
		icmp_conns: count &log &optional;

		## get_net_stats(): packet source counters since start.
		pkts_recvd: count &log &optional;
		pkts_dropped: count &log &optional;
		pkts_link: count &log &optional;
		bytes_recvd: count &log &optional;

		## get_reassembler_stats(): bytes held for reassembly now.
		reassem_tcp_bytes: count &log &optional;
		reassem_file_bytes: count &log &optional;
		reassem_frag_bytes: count &log &optional;
		reassem_unknown_bytes: count &log &optional;

		## get_file_analysis_stats(): files being analysed now, since start.
		files_current: count &log &optional;
		files_cumulative: count &log &optional;

		## get_dns_stats(): Zeek's own DNS lookups, since start and pending.
		dns_requests: count &log &optional;
		dns_pending: count &log &optional;

		## get_thread_stats(): threads Zeek runs (log writers, ...).
		threads: count &log &optional;

		## get_reporter_stats(): weirds seen since start.
		weirds: count &log &optional;
	};
}

# Paths of the two logs; zeek-probe reads them by these names.
const memory_path = "zeek_probe_memory";
const stats_path = "zeek_probe_stats";

# Count fields of StatsInfo that are not cheap counters.
const not_counters: set[string] = {
	"run",
	"globals"
};

global current_run = 0;

global measure: event();

function node_name(): string
	{
	return Cluster::is_enabled() ? Cluster::node : "standalone";
	}

function to_us(i: interval): count
	{
	local us = interval_to_double(i) * 1000000.0;
	return us > 0.0 ? double_to_count(us) : 0;
	}

# Splits a global's name at its last "::": "Cluster::Backend::ZeroMQ::x" is
# variable "x" of module "Cluster::Backend::ZeroMQ"; "x" is module GLOBAL.
function new_entry(name: string): MemoryEntry
	{
	local parts = split_string(name, /::/);
	if ( |parts| < 2 )
		return MemoryEntry($module_name="GLOBAL", $variable=name);

	local last = |parts| - 1;
	local module_name = parts[0];
	local i = 1;
	while ( i < last )
		{
		module_name = module_name + "::" + parts[i];
		++i;
		}

	return MemoryEntry($module_name=module_name, $variable=parts[last]);
	}

function weight(e: MemoryEntry): count
	{
	if ( e?$footprint )
		return e$footprint;
	if ( e?$size )
		return e$size;
	return 0;
	}

# Biggest first, then by name, so that a log or a diff reads top-down.
function by_weight(a: MemoryEntry, b: MemoryEntry): int
	{
	local wa = weight(a);
	local wb = weight(b);
	if ( wa != wb )
		return wa > wb ? -1 : 1;
	if ( a$module_name != b$module_name )
		return strcmp(a$module_name, b$module_name);
	return strcmp(a$variable, b$variable);
	}

# The expensive part. Each built-in is guarded with @ifdef so that this file
# parses and loads on every version: global_container_footprints() exists from
# Zeek 5.0 on, global_sizes() up to 5.0 (removed in 5.1).
function measure_memory(): vector of MemoryEntry
	{
	local by_name: table[string] of MemoryEntry = table();

@ifdef ( global_container_footprints )
	for ( name, n in global_container_footprints() )
		{
		by_name[name] = new_entry(name);
		by_name[name]$footprint = n;
		}
@endif

@ifdef ( global_sizes )
	for ( name, bytes in global_sizes() )
		{
		if ( name !in by_name )
			by_name[name] = new_entry(name);
		by_name[name]$size = bytes;
		}
@endif

	local entries: vector of MemoryEntry = vector();
	for ( name, e in by_name )
		{
		if ( weight(e) >= min_footprint )
			entries[|entries|] = e;
		}

	# sort() sorts in place.
	sort(entries, by_weight);
	return entries;
	}

# The cheap counters. Every get_*_stats() built-in used here exists on Zeek
# 6.0 through 8.2 with these fields; the @ifdef guards only keep the file
# loading should a later version drop one. get_broker_stats() is left out on
# purpose: it asks Broker's own thread for its peers (a blocking round trip),
# and says nothing on a ZeroMQ cluster.
function fill_counters(info: StatsInfo, ps: ProcStats)
	{
	info$mem_bytes = ps$mem;
	info$minor_faults = ps$minor_faults;
	info$major_faults = ps$major_faults;
	info$involuntary_context_switches = ps$num_context;
	info$user_time_us = to_us(ps$user_time);
	info$system_time_us = to_us(ps$system_time);

@ifdef ( get_event_stats )
	local event_counts = get_event_stats();
	info$events_queued = event_counts$queued;
	info$events_dispatched = event_counts$dispatched;
@endif

@ifdef ( get_timer_stats )
	local timer_counts = get_timer_stats();
	info$timers_current = timer_counts$current;
	info$timers_cumulative = timer_counts$cumulative;
@endif

@ifdef ( get_conn_stats )
	local conn_counts = get_conn_stats();
	info$conns_total = conn_counts$total_conns;
	info$tcp_conns = conn_counts$num_tcp_conns;
	info$udp_conns = conn_counts$num_udp_conns;
	info$icmp_conns = conn_counts$num_icmp_conns;
@endif

@ifdef ( get_net_stats )
	local net_counts = get_net_stats();
	info$pkts_recvd = net_counts$pkts_recvd;
	info$pkts_dropped = net_counts$pkts_dropped;
	info$pkts_link = net_counts$pkts_link;
	info$bytes_recvd = net_counts$bytes_recvd;
@endif

@ifdef ( get_reassembler_stats )
	local reassembly = get_reassembler_stats();
	info$reassem_tcp_bytes = reassembly$tcp_size;
	info$reassem_file_bytes = reassembly$file_size;
	info$reassem_frag_bytes = reassembly$frag_size;
	info$reassem_unknown_bytes = reassembly$unknown_size;
@endif

@ifdef ( get_file_analysis_stats )
	local file_counts = get_file_analysis_stats();
	info$files_current = file_counts$current;
	info$files_cumulative = file_counts$cumulative;
@endif

@ifdef ( get_dns_stats )
	local dns_counts = get_dns_stats();
	info$dns_requests = dns_counts$requests;
	info$dns_pending = dns_counts$pending;
@endif

@ifdef ( get_thread_stats )
	info$threads = get_thread_stats()$num_threads;
@endif

@ifdef ( get_reporter_stats )
	info$weirds = get_reporter_stats()$weirds;
@endif
	}

# The counters table of the wire event, derived from the log record so that
# both always carry the same names.
function counters_of(info: StatsInfo): table[string] of count
	{
	local counters: table[string] of count = table();
	for ( name, field in record_fields(info) )
		{
		if ( name in not_counters || ! field?$value )
			next;
		if ( field$type_name != "count" )
			next;
		counters[name] = field$value as count;
		}

	if ( info?$cpu_cost )
		counters["cpu_cost_us"] = to_us(info$cpu_cost);

	return counters;
	}

event ZeekProbe::measure()
	{
	++current_run;
	local node = node_name();

	# Cost of the run: wall time from current_time() and process CPU time
	# from getrusage(), both read before and after the measurement.
	local started = current_time();
	local before = get_proc_stats();

	local entries: vector of MemoryEntry = vector();
	if ( measure_globals )
		entries = measure_memory();

	local after = get_proc_stats();
	local info = StatsInfo($ts=started, $run=current_run, $node=node,
	    $cost=current_time() - started, $globals=|entries|);
	fill_counters(info, after);

	local cpu_before = before$user_time + before$system_time;
	local cpu_after = after$user_time + after$system_time;
	if ( cpu_after >= cpu_before )
		info$cpu_cost = cpu_after - cpu_before;

	for ( i in entries )
		{
		local e = entries[i];
		local row = MemoryInfo($ts=started, $run=current_run, $node=node,
		    $module_name=e$module_name, $variable=e$variable);
		if ( e?$footprint )
			row$footprint = e$footprint;
		if ( e?$size )
			row$size = e$size;
		Log::write(MEMORY_LOG, row);
		}

	Log::write(STATS_LOG, info);

	local counters = counters_of(info);
	event ZeekProbe::run_done(node, current_run, info$cost, entries, counters);

	if ( ! zeek_is_terminating() )
		schedule stats_interval { ZeekProbe::measure() };
	}

# Gives the memory stream's module_name field its column name, "module", on
# one filter. The map is copied, not changed in place: a filter's default map
# is the global Log::default_field_name_map.
function name_module_column(f: Log::Filter): Log::Filter
	{
	local map = copy(f$field_name_map);
	map["module_name"] = "module";
	f$field_name_map = map;
	return f;
	}

event zeek_init() &priority=5
	{
	Log::create_stream(MEMORY_LOG, Log::Stream($columns=MemoryInfo,
	    $path=memory_path, $policy=log_policy_memory));
	Log::create_stream(STATS_LOG, Log::Stream($columns=StatsInfo, $path=stats_path,
	    $policy=log_policy_stats));

	local f = Log::get_filter(MEMORY_LOG, "default");
	if ( f$name == "default" )
		Log::add_filter(MEMORY_LOG, name_module_column(f));

	schedule initial_delay { ZeekProbe::measure() };
	}
