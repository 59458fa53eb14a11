//! `profile.pb.gz`: the pprof protobuf format, for `go tool pprof` and Grafana Pyroscope.
