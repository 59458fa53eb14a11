# A small self-contained workload for `cargo xtask demo` on a host with a real Zeek:
# script functions (recursive), events queued from script, BIFs and log writes.
@load base/frameworks/logging

module ZeekProbeDemo;

export {
	redef enum Log::ID += { LOG };

	type Info: record {
		n: count &log;
		fib: count &log;
		label: string &log;
	};
}

function fib(n: count): count
	{
	return n < 2 ? n : fib(n - 1) + fib(n - 2);
	}

event tick(n: count)
	{
	Log::write(LOG, Info($n=n, $fib=fib(12), $label=to_lower(fmt("Tick-%d", n))));
	if ( n > 0 )
		event tick(n - 1);
	}

event zeek_init()
	{
	Log::create_stream(LOG, [$columns=Info, $path="zeek_probe_demo"]);
	event tick(2000);
	}
