##! Sends every run to zeek-probe as a cluster event when Zeek's own ZeroMQ
##! cluster backend is in use (Zeek 7.1+).
##!
##! Each run becomes one :zeek:see:`ZeekProbe::memory_stats` event published
##! with ``Cluster::publish`` to :zeek:see:`ZeekProbe::publish_topic`. On a
##! ZeroMQ cluster every published event passes through the manager's
##! XPUB/XSUB proxy, so zeek-probe can subscribe to this one topic on the
##! proxy's XPUB endpoint (``zeek-probe attach --cluster --zmq-cluster
##! tcp://127.0.0.1:5555``) without joining the cluster. No Zeek node
##! subscribes to the topic, so the events cost the cluster nothing beyond
##! the proxy.
##!
##! Detection, in two steps:
##!
##! * at parse time, ``@ifdef ( Cluster::CLUSTER_BACKEND_ZEROMQ )``: that enum
##!   value is created by the built-in ZeroMQ backend plugin, which exists
##!   from Zeek 7.1 on (and only when Zeek was built with it). On Zeek 6.0
##!   and 7.0 neither it nor ``Cluster::backend`` nor ``Cluster::publish``
##!   exists, and everything below is skipped.
##! * at run time, ``Cluster::backend == Cluster::CLUSTER_BACKEND_ZEROMQ``:
##!   the backend scripts redef ``Cluster::backend`` (loading
##!   ``policy/frameworks/cluster/backend/zeromq``), possibly after this
##!   package was loaded, so the choice is only known once scripts are done.
##!
##! Broker clusters (the default before Zeek 8.1) publish nothing: zeek-probe
##! reads the logs there (see ``zmq-logs.zeek``).

@load ./main

module ZeekProbe;

export {
	## Set to F to stop publishing runs on a ZeroMQ cluster.
	option publish_events = T;

	## Topic the runs are published to. zeek-probe subscribes to exactly
	## this topic: change both or neither.
	const publish_topic = "zeek.probe.stats" &redef;
}

@ifdef ( Cluster::CLUSTER_BACKEND_ZEROMQ )

# Cluster::publish() returns F when the backend refuses the event (not
# initialised, or overloaded). Say so once, not every run.
global publish_failed_reported = F;

event ZeekProbe::run_done(node: string, run: count, cost: interval,
    entries: vector of MemoryEntry, counters: table[string] of count)
	{
	if ( ! publish_events || Cluster::backend != Cluster::CLUSTER_BACKEND_ZEROMQ )
		return;

	if ( Cluster::publish(publish_topic, ZeekProbe::memory_stats, node, run, cost,
	    entries, counters) )
		return;

	if ( ! publish_failed_reported )
		{
		publish_failed_reported = T;
		Reporter::warning(fmt("zeek-probe: Cluster::publish to %s failed; "
		    + "runs are still logged", publish_topic));
		}
	}

@endif
