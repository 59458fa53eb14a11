//! `flamegraph.svg`, drawn by inferno from the folded stacks.
use std::{
    fs, io,
    path::{Path, PathBuf},
};

use inferno::flamegraph::{self, Options};

use crate::{profile::Sampling, report::folded};

pub const FILE_NAME: &str = "flamegraph.svg";

#[derive(Debug, thiserror::Error)]
pub enum FlamegraphError {
    #[error("cannot draw the flame graph")]
    Draw(#[source] io::Error),
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Writes the flame graph of `sampling`, whose folded lines are `folded` (`folded::render`),
/// to `dir/flamegraph.svg`, headed by `title`.
pub fn write(dir: &Path, sampling: &Sampling, folded: &str, title: &str) -> Result<(), FlamegraphError> {
    fs::create_dir_all(dir).map_err(|source| FlamegraphError::Write { path: dir.to_owned(), source })?;
    let path = dir.join(FILE_NAME);
    let svg = draw(sampling, folded, title)?;
    fs::write(&path, svg).map_err(|source| FlamegraphError::Write { path, source })
}

/// Writes the flame graph of `sampling` to `path`, headed by `title`.
pub fn write_file(path: &Path, sampling: &Sampling, title: &str) -> Result<(), FlamegraphError> {
    let svg = draw(sampling, &folded::render(sampling), title)?;
    fs::write(path, svg).map_err(|source| FlamegraphError::Write { path: path.to_owned(), source })
}

/// The picture of `sampling`'s folded lines, `folded`.
fn draw(sampling: &Sampling, folded: &str, title: &str) -> Result<Vec<u8>, FlamegraphError> {
    let subtitle = format!("{} Hz CPU samples", sampling.hz);
    // inferno refuses a profile without samples (and draws an error picture); a run that never
    // got on the CPU is still a valid result, so it gets a picture that says so.
    if folded.is_empty() {
        return Ok(no_samples_svg(title, &subtitle).into_bytes());
    }
    let mut options = Options::default();
    options.title = title.to_owned();
    options.subtitle = Some(subtitle);
    options.count_name = "samples".to_owned();
    // Colours from a hash of the name, so a function keeps its colour from one report to the next.
    options.hash = true;
    // `folded::render` sorts its lines.
    options.no_sort = true;
    let mut svg = Vec::new();
    flamegraph::from_lines(&mut options, folded.lines(), &mut svg).map_err(FlamegraphError::Draw)?;
    Ok(svg)
}

fn no_samples_svg(title: &str, subtitle: &str) -> String {
    format!(
        r##"<?xml version="1.0" standalone="no"?>
<svg version="1.1" width="1200" height="110" viewBox="0 0 1200 110" xmlns="http://www.w3.org/2000/svg">
<rect x="0" y="0" width="100%" height="100%" fill="#eeeeee"/>
<text x="50%" y="30" text-anchor="middle" font-family="Verdana" font-size="17">{}</text>
<text x="50%" y="55" text-anchor="middle" font-family="Verdana" font-size="12" fill="#a0a0a0">{}</text>
<text x="50%" y="85" text-anchor="middle" font-family="Verdana" font-size="14">no samples</text>
</svg>
"##,
        xml_escaped(title),
        xml_escaped(subtitle)
    )
}

/// `text` as XML character data: the title is the caller's and may hold `&` or `<`.
fn xml_escaped(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{SampledStack, StackFrame};

    fn stack(names: &[&str], samples: u64) -> SampledStack {
        let frames = names.iter().map(|n| StackFrame::named(*n)).collect();
        SampledStack { frames, samples }
    }

    /// Writes the flame graph and returns the text of every node of the parsed SVG.
    fn drawn_text(sampling: &Sampling, title: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), sampling, &folded::render(sampling), title).unwrap();
        let svg = fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        // inferno's SVG declares the SVG 1.1 DTD.
        let options = roxmltree::ParsingOptions { allow_dtd: true, ..Default::default() };
        let doc = roxmltree::Document::parse_with_options(&svg, options).unwrap();
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        doc.descendants().filter_map(|n| n.text()).collect::<Vec<_>>().join("\n")
    }

    #[test]
    fn draws_well_formed_svg_with_the_frame_names() {
        let sampling = Sampling {
            hz: 999,
            native_stacks: Default::default(),
            stacks: vec![
                stack(&["zeek", "new_connection", "zeek::Foo::bar(int, char)"], 30),
                stack(&["zeek", "log_write<Conn::Info>"], 20),
            ],
        };
        let text = drawn_text(&sampling, "zeek-probe: PID 42 & friends");
        for expected in
            ["zeek-probe: PID 42 & friends", "999 Hz CPU samples", "new_connection", "zeek::Foo::bar(int, char)"]
        {
            assert!(text.contains(expected), "{expected:?} missing from {text}");
        }
        assert!(text.contains("log_write<Conn::Info> (20 samples"), "{text}");
    }

    #[test]
    fn no_samples_still_draws_a_well_formed_svg() {
        let sampling = Sampling { hz: 99, stacks: vec![stack(&["zeek"], 0)], ..Sampling::default() };
        let text = drawn_text(&sampling, "<empty> & idle");
        assert!(text.contains("<empty> & idle"), "{text}");
        assert!(text.contains("99 Hz CPU samples"), "{text}");
        assert!(text.contains("no samples"), "{text}");
    }
}
