//! Decoded frames → the Zeek component they belong to, a label of bounded cardinality for
//! "which analyzer costs me": each protocol analyzer and packet analyzer by its namespace,
//! file analyzers, log writers, threading, I/O sources, the cluster backend, timers, table
//! expiration and the script interpreter. Zeek's C++ namespaces say it: a protocol analyzer
//! lives in `zeek::analyzer::<proto>::` (its binpac parser in `binpac::<PROTO>::`), a packet
//! analyzer in `zeek::packet_analysis::<PROTO>::`, and so on. Threads without a native stack
//! (with one, their frames tell) are told by their name: Zeek names its own `zk.<name>`, Broker's are CAF's `caf.*`, libzmq's
//! `ZMQbg/*`.
use super::{DecodedFrame, FuncKind};

/// Script functions, events, hooks and BIFs, and the C++ that runs them.
pub const SCRIPT_INTERPRETER: &str = "script_interpreter";

/// The component `frame` is part of, if it is one the label tells apart.
pub fn component_of(frame: &DecodedFrame) -> Option<String> {
    match frame.kind {
        FuncKind::Function | FuncKind::Event | FuncKind::Hook | FuncKind::Bif => Some(SCRIPT_INTERPRETER.to_owned()),
        FuncKind::Native => native_component(&frame.frame.name),
        FuncKind::Thread => thread_component(frame.frame.name.strip_prefix("[thread] ")?),
        FuncKind::Kernel => None,
    }
}

/// A demangled C++ function's component, by its namespace.
fn native_component(name: &str) -> Option<String> {
    let fixed = |c: &str| Some(c.to_owned());
    if let Some(rest) = name.strip_prefix("zeek::") {
        if let Some(proto) = scope_of(rest, "analyzer::", NAMESPACE) {
            return Some(format!("analyzer/{}", proto.to_ascii_lowercase()));
        }
        if let Some(proto) = scope_of(rest, "packet_analysis::", NAMESPACE) {
            return Some(format!("packet_analysis/{}", proto.to_ascii_lowercase()));
        }
        if let Some(writer) =
            scope_of(rest, "logging::writer::detail::", CLASS).or_else(|| scope_of(rest, "logging::writer::", CLASS))
        {
            return Some(format!("log_writer/{}", writer.to_ascii_lowercase()));
        }
        if let Some(analyzer) = scope_of(rest, "file_analysis::detail::", CLASS) {
            return Some(format!("file_analysis/{}", analyzer.to_ascii_lowercase()));
        }
        return match rest {
            r if r.starts_with("file_analysis::") => fixed("file_analysis"),
            r if r.starts_with("threading::") => fixed("threading"),
            r if r.starts_with("iosource::") => fixed("iosource"),
            r if r.starts_with("Broker::") => fixed("cluster/broker"),
            r if r.starts_with("cluster::zeromq::") => fixed("cluster/zeromq"),
            r if r.starts_with("cluster::") => fixed("cluster"),
            r if r.starts_with("TableVal::DoExpire") || r.starts_with("detail::TableValTimer::") => {
                fixed("table_expiration")
            }
            r if r.starts_with("detail::TimerMgr::") || r.starts_with("detail::PQ_TimerMgr::") => fixed("timers"),
            r if r.starts_with("detail::ScriptFunc::") || r.starts_with("detail::ZBody::") => fixed(SCRIPT_INTERPRETER),
            _ => None,
        };
    }
    if let Some(proto) = scope_of(name, "binpac::", NAMESPACE) {
        return Some(format!("analyzer/{}", proto.to_ascii_lowercase()));
    }
    match name {
        n if n.starts_with("broker::") || n.starts_with("caf::") => fixed("cluster/broker"),
        n if n.starts_with("zmq::") => fixed("cluster/zeromq"),
        _ => None,
    }
}

/// What follows the scope named: a namespace is followed by a class and its function, a class
/// by its function.
const NAMESPACE: usize = 2;
const CLASS: usize = 1;

/// The scope right under `prefix` in `name`, when `following` more segments come after it:
/// the namespace `http` in `analyzer::http::HTTP_Analyzer::DeliverStream`, but none in the
/// framework's own `analyzer::Analyzer::NextStream`; the class `Ascii` in
/// `logging::writer::detail::Ascii::DoWrite`.
fn scope_of<'a>(name: &'a str, prefix: &str, following: usize) -> Option<&'a str> {
    let mut segments = name.strip_prefix(prefix)?.split("::");
    let scope = segments.next()?;
    (segments.count() >= following && !scope.is_empty()).then_some(scope)
}

/// A thread's component by its name (15 bytes at most: the kernel cuts it).
fn thread_component(comm: &str) -> Option<String> {
    match comm {
        c if c.starts_with("zk.") => Some("threading".to_owned()),
        c if c.starts_with("caf.") => Some("cluster/broker".to_owned()),
        c if c.starts_with("ZMQbg/") => Some("cluster/zeromq".to_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbolize::StackFrame;

    fn decoded(name: &str, kind: FuncKind) -> DecodedFrame {
        DecodedFrame { frame: StackFrame::named(name), kind, zeek_name: None }
    }

    fn native(name: &str) -> Option<String> {
        component_of(&decoded(name, FuncKind::Native))
    }

    #[test]
    fn analyzers_by_their_protocols_namespace() {
        assert_eq!(native("zeek::analyzer::http::HTTP_Analyzer::DeliverStream").as_deref(), Some("analyzer/http"));
        assert_eq!(native("zeek::analyzer::dns::DNS_Interpreter::ParseMessage").as_deref(), Some("analyzer/dns"));
        assert_eq!(native("binpac::SSL::SSL_Conn::NewData").as_deref(), Some("analyzer/ssl"));
        assert_eq!(
            native("zeek::packet_analysis::IP::IPAnalyzer::AnalyzePacket").as_deref(),
            Some("packet_analysis/ip")
        );
        // The frameworks' own classes are no protocol.
        assert_eq!(native("zeek::analyzer::Analyzer::NextStream"), None);
        assert_eq!(native("zeek::packet_analysis::Manager::ProcessPacket"), None);
    }

    #[test]
    fn writers_files_io_cluster_timers_and_expiration() {
        let cases = [
            ("zeek::logging::writer::detail::Ascii::DoWrite", "log_writer/ascii"),
            ("zeek::file_analysis::detail::X509::EndOfFile", "file_analysis/x509"),
            ("zeek::file_analysis::Manager::DataIn", "file_analysis"),
            ("zeek::threading::MsgThread::Run", "threading"),
            ("zeek::iosource::PktSrc::ExtractNextPacket", "iosource"),
            ("zeek::Broker::Manager::Process", "cluster/broker"),
            ("broker::internal::core_actor_state::dispatch", "cluster/broker"),
            ("caf::scheduler::worker::run", "cluster/broker"),
            ("zeek::cluster::zeromq::ZeroMQBackend::Run", "cluster/zeromq"),
            ("zmq::socket_base_t::send", "cluster/zeromq"),
            ("zeek::detail::PQ_TimerMgr::DoAdvance", "timers"),
            ("zeek::TableVal::DoExpire", "table_expiration"),
            ("zeek::detail::ScriptFunc::Invoke", SCRIPT_INTERPRETER),
        ];
        for (name, component) in cases {
            assert_eq!(native(name).as_deref(), Some(component), "{name}");
        }
        for other in ["zeek::Connection::NextPacket", "memcpy", "[libc.so.6]", "[native]", "0x1234"] {
            assert_eq!(native(other), None, "{other}");
        }
    }

    #[test]
    fn script_frames_threads_and_the_kernel() {
        for kind in [FuncKind::Function, FuncKind::Event, FuncKind::Hook, FuncKind::Bif] {
            assert_eq!(component_of(&decoded("fib", kind)).as_deref(), Some(SCRIPT_INTERPRETER));
        }
        let thread = |comm: &str| component_of(&decoded(&format!("[thread] {comm}"), FuncKind::Thread));
        assert_eq!(thread("zk.conn/Log::WRI").as_deref(), Some("threading"));
        assert_eq!(thread("caf.worker").as_deref(), Some("cluster/broker"));
        assert_eq!(thread("ZMQbg/IO/0").as_deref(), Some("cluster/zeromq"));
        assert_eq!(thread("libkqueue_mon"), None);
        assert_eq!(component_of(&decoded("[k] read_zero", FuncKind::Kernel)), None);
    }
}
