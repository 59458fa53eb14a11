# zeek-probe's companion package: one job per file.
#
# main.zeek     measures each node every ZeekProbe::stats_interval and writes
#               zeek_probe_memory.log and zeek_probe_stats.log.
# publish.zeek  publishes each run to zeek-probe on a ZeroMQ cluster (7.1+).
# zmq-logs.zeek sends both logs to zeek-probe through the NCSA ZeroMQ log
#               writer plugin, when that plugin is loaded.
@load ./main
@load ./publish
@load ./zmq-logs
