//! Second opinions on the ABI the version symbol names: symbols that appear or change shape
//! between generations. `g_frame_stack` exists up to 8.0; `EventHandler::Call` lost its
//! `no_remote` and `ts` parameters in 8.1.
use super::{
    symbols::{self, SymbolIndex},
    version::ZeekVersion,
};

/// One symbol checked against what the version implies.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Evidence {
    pub fact: &'static str,
    /// Whether the binary agrees with its version symbol.
    pub agrees: bool,
}

pub fn collect(version: &ZeekVersion, symbols: &SymbolIndex) -> Vec<Evidence> {
    let before_8_1 = version.number() < 8_01_00;
    let has = |name| symbols.address(name).is_some();
    let mut evidence = vec![Evidence {
        fact: if before_8_1 { "g_frame_stack present (up to 8.0)" } else { "g_frame_stack absent (8.1 on)" },
        agrees: has(symbols::FRAME_STACK) == before_8_1,
    }];
    // A binary without either Call symbol (inlined, or hidden) says nothing either way.
    if has(symbols::EVENT_HANDLER_CALL_3) || has(symbols::EVENT_HANDLER_CALL_1) {
        evidence.push(Evidence {
            fact: if before_8_1 {
                "EventHandler::Call(Args*, bool, double) (up to 8.0)"
            } else {
                "EventHandler::Call(Args*) (8.1 on)"
            },
            agrees: has(if before_8_1 { symbols::EVENT_HANDLER_CALL_3 } else { symbols::EVENT_HANDLER_CALL_1 }),
        });
    }
    evidence
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binary::symbols::Symbol;

    fn index(names: &[&str]) -> SymbolIndex {
        let mut index = SymbolIndex::default();
        for (i, name) in names.iter().enumerate() {
            index
                .insert(name, Symbol { address: 0x1000 * (i as u64 + 1), size: 8, is_function: false, is_weak: false });
        }
        index
    }

    #[test]
    fn a_consistent_8_2_binary() {
        let v = ZeekVersion::from_symbol("zeek_version_8_2_2_plugin_7").unwrap();
        let e = collect(&v, &index(&[symbols::EVENT_HANDLER_CALL_1]));
        assert!(e.iter().all(|e| e.agrees), "{e:?}");
        assert_eq!(e.len(), 2);
    }

    #[test]
    fn a_7_0_version_symbol_on_an_8_1_binary_is_caught() {
        let v = ZeekVersion::from_symbol("zeek_version_7_0_0_plugin_5").unwrap();
        let e = collect(&v, &index(&[symbols::EVENT_HANDLER_CALL_1]));
        assert!(e.iter().all(|e| !e.agrees), "{e:?}");
    }
}
