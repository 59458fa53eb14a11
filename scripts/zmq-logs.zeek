##! Sends the two zeek-probe logs to zeek-probe through the NCSA ZeroMQ log
##! writer plugin (``NCSA::ZeroMQWriter``), when that plugin is loaded.
##!
##! The plugin adds the log writer ``Log::WRITER_ZEROMQ``: one PUB socket per
##! filter that connects to a subscriber's endpoint and sends every record as
##! two frames, the log path and the record as JSON. This file adds a filter
##! with that writer to ``zeek_probe_memory`` and ``zeek_probe_stats``, with
##! the endpoint :zeek:see:`ZeekProbe::zmq_log_endpoint` (passed in the
##! filter's ``config`` table, which the plugin reads before its global
##! ``LogZeroMQ::endpoint``). zeek-probe binds that endpoint
##! (``zeek-probe attach --zmq-logs tcp://127.0.0.1:5557``). In a cluster the
##! writer runs on the logger node, like every log writer.
##!
##! Detection is at parse time: the writer's enum value ``Log::WRITER_ZEROMQ``
##! and the plugin's option ``LogZeroMQ::endpoint`` both exist only when the
##! plugin is active. Without them this file does nothing. With ``zeek -b``
##! (bare mode) dynamic plugins are only active after ``@load-plugin
##! NCSA::ZeroMQWriter``, which must then come before this package.
##!
##! The plugin's own ``NCSA/ZeroMQWriter`` scripts add a catch-all filter
##! named ``default-zmq`` to every stream when ``LogZeroMQ::endpoint`` is
##! set. Two filters with one writer and one path would clash (Zeek renames
##! the second path ``zeek_probe_stats-2``), so this file replaces that
##! filter on its two streams: they go to ``ZeekProbe::zmq_log_endpoint``
##! only. Set that option to ``LogZeroMQ::endpoint`` to keep them with the
##! other logs.

@load ./main

module ZeekProbe;

export {
	## Where zeek-probe listens for the two logs. Empty disables the filter.
	## Read once, at start-up.
	option zmq_log_endpoint = "tcp://127.0.0.1:5557";
}

@ifdef ( Log::WRITER_ZEROMQ )
@ifdef ( LogZeroMQ::endpoint )

function zmq_filter(path: string): Log::Filter
	{
	local config: table[string] of string = {["endpoint"] = zmq_log_endpoint};

	# Rotation off, as the plugin's own filter does: a socket has nothing to
	# rotate.
	return Log::Filter($name="zeek-probe-zmq", $writer=Log::WRITER_ZEROMQ,
	    $path=path, $interv=0sec, $config=config);
	}

# After the plugin's catch-all (zeek_init priority -5), so that its filter can
# be removed from these two streams.
event zeek_init() &priority=-10
	{
	if ( zmq_log_endpoint == "" )
		return;

	Log::remove_filter(MEMORY_LOG, "default-zmq");
	Log::remove_filter(STATS_LOG, "default-zmq");

	Log::add_filter(MEMORY_LOG, name_module_column(zmq_filter(memory_path)));
	Log::add_filter(STATS_LOG, zmq_filter(stats_path));
	}

@endif
@endif
