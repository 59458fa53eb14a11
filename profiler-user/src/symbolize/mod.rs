//! Turning what the probes recorded (name hashes, enum ordinals, raw kinds) into the names
//! people read. One small decoder per label kind, each cached where the lookup is costly.
use crate::poisoned_lock::lock;

pub mod component;
pub mod func_kind;
pub mod func_name;
pub mod function_names;
mod inlined_chain;
mod kept_units_file;
mod kernel_symbol_cache;
pub mod kernel_symbols;
pub mod library_symbols;
pub mod log_stream;
pub mod native_lines;
pub mod process_code;
pub mod stack;
pub mod symbol_prefetch;

pub use component::component_of;
pub use func_kind::FuncKind;
pub use func_name::func_name;
pub use function_names::{FunctionNames, UNRESOLVED};
pub use kernel_symbols::KernelSymbols;
pub use library_symbols::LibrarySymbols;
pub use log_stream::LogStreamNames;
pub use native_lines::{Effort, SourceFrame, SourceLines};
pub use process_code::ProcessCode;
pub use stack::{DecodedFrame, NativeCode, StackDecoder, StackFrame};
pub use symbol_prefetch::SymbolPrefetch;
