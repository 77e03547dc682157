//! Generated hostile input against the protocol layer: the query decoder and the XML writer.
//!
//! CI runs a few thousand cases per property; `scripts/hostile-campaign` runs a million
//! (`PROPTEST_CASES`). A failing case is shrunk and saved under `proptest-regressions/`, which is
//! checked in: the crash corpus replays on every run.

use ec2api::query::Node;
use ec2api::xml::{render_response, XmlStruct, XmlValue, XmlWriter};
use ec2api::Action;
use proptest::prelude::*;

/// A few thousand cases unless `PROPTEST_CASES` says otherwise.
fn config() -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 1000;
    }
    config
}

/// Segments of real parameter names, numbers good and bad, and noise.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "Filter",
            "Name",
            "Value",
            "InstanceId",
            "VolumeId",
            "TagSpecification",
            "ResourceType",
            "Tag",
            "Key",
            "MaxResults",
            "NextToken",
            "BlockDeviceMapping",
            "DeviceName",
            "Ebs",
            "VolumeSize",
            "NetworkInterface",
            "PrivateIpAddresses",
            "PrivateIpAddress",
            "DeviceIndex",
            "IpPermissions",
            "IpRanges",
            "CidrIp",
            "FromPort",
            "DryRun",
            "MinCount",
            "MaxCount",
            "ImageId",
            "UserData",
            "1",
            "2",
            "0",
            "01",
            "-1",
            "99999999999999999999",
            "",
        ])
        .prop_map(str::to_owned),
        "[A-Za-z0-9_%\\-]{0,12}",
    ]
}

fn parameter() -> impl Strategy<Value = (String, String)> {
    let name = prop::collection::vec(segment(), 1..9).prop_map(|s| s.join("."));
    let value = prop_oneof![
        prop::sample::select(vec![
            "",
            "1",
            "-1",
            "true",
            "TRUE",
            "i-0123456789abcdef0",
            "2026-11-25T02:19:25Z",
            "AAAA"
        ])
        .prop_map(str::to_owned),
        any::<String>(),
    ];
    (name, value)
}

proptest! {
    #![proptest_config(config())]

    /// Any bytes as a form body: decoding ends in a typed request or a 400-class EC2 error.
    #[test]
    fn any_body_decodes_or_is_refused(body in prop::collection::vec(any::<u8>(), 0..512), which in any::<prop::sample::Index>()) {
        let action = Action::NAMES[which.index(Action::NAMES.len())];
        if let Ok(node) = Node::parse_form(&body) {
            if let Err(error) = Action::decode(action, &node) {
                prop_assert_eq!(error.status(), 400, "{:?}", error);
            }
        }
    }

    /// Parameters shaped like real ones, nested and numbered wrongly: the same.
    #[test]
    fn shaped_parameters_decode_or_are_refused(
        params in prop::collection::vec(parameter(), 0..24),
        which in any::<prop::sample::Index>(),
    ) {
        let action = Action::NAMES[which.index(Action::NAMES.len())];
        match Node::parse(params.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
            Ok(node) => {
                if let Err(error) = Action::decode(action, &node) {
                    prop_assert_eq!(error.status(), 400, "{:?}", error);
                    prop_assert!(error.message().len() < 2048, "{} bytes", error.message().len());
                }
            }
            Err(error) => prop_assert_eq!(error.code(), "UnknownParameter"),
        }
    }

    /// Whatever text a client stored comes back out of the XML as the same text, except for the
    /// characters XML 1.0 cannot carry, which read as U+FFFD.
    #[test]
    fn any_text_survives_the_xml_writer(text in any::<String>()) {
        struct One(String);
        impl XmlStruct for One {
            fn write_members(&self, w: &mut XmlWriter) {
                self.0.write_xml(w, "value");
            }
        }
        let body = render_response("DescribeTags", &One(text.clone()), "r");
        let read = read_value(&body);
        let expected: String = text
            .chars()
            .map(|c| match c {
                '\t' | '\n' | '\r' => c,
                '\u{0}'..='\u{1F}' | '\u{FFFE}' | '\u{FFFF}' => '\u{FFFD}',
                other => other,
            })
            .collect();
        prop_assert_eq!(read, Ok(expected));
    }
}

/// The text of `<value>` as a conforming parser reads it.
fn read_value(body: &[u8]) -> Result<String, String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut inside = false;
    let mut text = String::new();
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            Event::Start(e) if e.name().as_ref() == b"value" => inside = true,
            Event::End(e) if e.name().as_ref() == b"value" => return Ok(text),
            Event::Text(t) if inside => {
                let raw = std::str::from_utf8(&t).map_err(|e| e.to_string())?;
                if raw.chars().any(|c| c == '\r' || (c < ' ' && c != '\t' && c != '\n')) {
                    return Err(format!("raw character XML cannot hold: {raw:?}"));
                }
                text.push_str(raw);
            }
            Event::GeneralRef(r) if inside => {
                let name = std::str::from_utf8(&r).map_err(|e| e.to_string())?;
                let resolved = match name {
                    "lt" => '<',
                    "gt" => '>',
                    "amp" => '&',
                    "apos" => '\'',
                    "quot" => '"',
                    _ => r.resolve_char_ref().map_err(|e| e.to_string())?.ok_or(format!("&{name};"))?,
                };
                text.push(resolved);
            }
            Event::Eof => return Err("no <value>".into()),
            _ => {}
        }
    }
}

#[test]
fn control_characters_and_carriage_returns_are_written_as_xml_can_hold_them() {
    struct One(&'static str);
    impl XmlStruct for One {
        fn write_members(&self, w: &mut XmlWriter) {
            self.0.to_owned().write_xml(w, "value");
        }
    }
    let body = String::from_utf8(render_response("X", &One("a\u{1}b\rc<d"), "r")).unwrap();
    assert!(body.contains("<value>a\u{FFFD}b&#xD;c&lt;d</value>"), "{body}");
}
