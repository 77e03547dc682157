//! XML writing: typed outputs → EC2 response bodies.
//!
//! Members are direct children of `<{Action}Response>` (no `Result` wrapper), named by their
//! lower-camel `locationName`; every list is a wrapper of `<item>` elements (the Go SDK accepts
//! nothing else); an empty list is written as `<name/>`, which SDKs read as `[]`.

use base64::Engine;
use chrono::SecondsFormat;
use quick_xml::escape::escape;

use crate::query::{Blob, Timestamp};
use crate::{Ec2Error, XML_NAMESPACE};

/// Writes straight into the body: element names are the model's plain ASCII names, so only
/// text needs escaping (quick-xml's).
pub struct XmlWriter {
    out: Vec<u8>,
}

impl XmlWriter {
    fn new() -> Self {
        // An instance's view is about 4 KiB: one allocation holds most answers.
        let mut out = Vec::with_capacity(8192);
        out.extend_from_slice(br#"<?xml version="1.0" encoding="UTF-8"?>"#);
        Self { out }
    }

    pub fn start(&mut self, name: &str) {
        self.out.push(b'<');
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(b'>');
    }

    pub fn end(&mut self, name: &str) {
        self.out.extend_from_slice(b"</");
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(b'>');
    }

    pub fn empty(&mut self, name: &str) {
        self.out.push(b'<');
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"/>");
    }

    pub fn text_element(&mut self, name: &str, text: &str) {
        self.start(name);
        self.text(text);
        self.end(name);
    }

    /// Text as XML 1.0 can carry it: quick-xml escapes the markup characters; a carriage return
    /// is written as a reference (a parser would turn a raw one into a newline); characters
    /// XML 1.0 cannot hold at all (most C0 controls, U+FFFE, U+FFFF) become U+FFFD, so that
    /// whatever a client stored (a tag value, a description) never makes a listing unreadable.
    fn text(&mut self, text: &str) {
        // Most text (ids, names, dates, addresses) is printable ASCII without markup: copied
        // as it is after one pass over its bytes.
        if text.bytes().all(plain) {
            self.out.extend_from_slice(text.as_bytes());
            return;
        }
        if !text.chars().any(needs_care) {
            self.out.extend_from_slice(escape(text).as_bytes());
            return;
        }
        for piece in text.split_inclusive(needs_care) {
            let (plain, last) = match piece.chars().next_back() {
                Some(c) if needs_care(c) => (&piece[..piece.len() - c.len_utf8()], Some(c)),
                _ => (piece, None),
            };
            self.out.extend_from_slice(escape(plain).as_bytes());
            match last {
                Some('\r') => self.out.extend_from_slice(b"&#xD;"),
                // XML 1.1 parsers read these as line ends too: as references they stay.
                Some('\u{85}') => self.out.extend_from_slice(b"&#x85;"),
                Some('\u{2028}') => self.out.extend_from_slice(b"&#x2028;"),
                Some(_) => self.out.extend_from_slice("\u{FFFD}".as_bytes()),
                None => {}
            }
        }
    }

    fn finish(self) -> Vec<u8> {
        self.out
    }
}

/// A byte of printable ASCII that XML text carries as it is.
fn plain(b: u8) -> bool {
    matches!(b, b' '..=b'~') && !matches!(b, b'<' | b'>' | b'&' | b'\'' | b'"')
}

/// A character the text writer must not pass to quick-xml's escaping as it is.
fn needs_care(c: char) -> bool {
    matches!(
        c,
        '\u{0}'..='\u{8}' | '\u{B}' | '\u{C}' | '\u{D}' | '\u{E}'..='\u{1F}' | '\u{85}' | '\u{2028}' | '\u{FFFE}' | '\u{FFFF}'
    )
}

/// A value that can be written as the element `name`.
pub trait XmlValue {
    fn write_xml(&self, w: &mut XmlWriter, name: &str);
}

/// A structure: its members can also be written without a wrapper (a response body).
pub trait XmlStruct {
    fn write_members(&self, w: &mut XmlWriter);
}

impl XmlValue for String {
    fn write_xml(&self, w: &mut XmlWriter, name: &str) {
        w.text_element(name, self);
    }
}

macro_rules! display_xml {
    ($($ty:ty),*) => {$(
        impl XmlValue for $ty {
            fn write_xml(&self, w: &mut XmlWriter, name: &str) {
                w.text_element(name, &self.to_string());
            }
        }
    )*};
}
display_xml!(i32, i64, f64, bool);

impl XmlValue for Timestamp {
    fn write_xml(&self, w: &mut XmlWriter, name: &str) {
        w.text_element(name, &format_timestamp(self));
    }
}

/// `2026-11-25T02:19:25.000Z`, as EC2 writes it.
pub fn format_timestamp(t: &Timestamp) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl XmlValue for Blob {
    fn write_xml(&self, w: &mut XmlWriter, name: &str) {
        w.text_element(name, &base64::engine::general_purpose::STANDARD.encode(&self.0));
    }
}

impl<T: XmlValue> XmlValue for Option<T> {
    fn write_xml(&self, w: &mut XmlWriter, name: &str) {
        if let Some(value) = self {
            value.write_xml(w, name);
        }
    }
}

impl<T: XmlValue> XmlValue for Vec<T> {
    fn write_xml(&self, w: &mut XmlWriter, name: &str) {
        if self.is_empty() {
            return w.empty(name);
        }
        w.start(name);
        for item in self {
            item.write_xml(w, "item");
        }
        w.end(name);
    }
}

impl<T: XmlValue> XmlValue for Box<T> {
    fn write_xml(&self, w: &mut XmlWriter, name: &str) {
        (**self).write_xml(w, name);
    }
}

/// The output of actions whose model has none: EC2 answers `<return>true</return>`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ReturnTrue;

impl XmlStruct for ReturnTrue {
    fn write_members(&self, w: &mut XmlWriter) {
        w.text_element("return", "true");
    }
}

/// A whole success body.
pub fn render_response(action: &str, output: &dyn XmlStruct, request_id: &str) -> Vec<u8> {
    let root = format!("{action}Response");
    let mut w = XmlWriter::new();
    w.out.push(b'<');
    w.out.extend_from_slice(root.as_bytes());
    w.out.extend_from_slice(br#" xmlns=""#);
    w.out.extend_from_slice(XML_NAMESPACE.as_bytes());
    w.out.extend_from_slice(br#"">"#);
    output.write_members(&mut w);
    w.text_element("requestId", request_id);
    w.end(&root);
    w.finish()
}

/// The EC2 error envelope botocore and the Go SDK parse.
pub fn render_error(error: &Ec2Error, request_id: &str) -> Vec<u8> {
    let mut w = XmlWriter::new();
    w.start("Response");
    w.start("Errors");
    w.start("Error");
    w.text_element("Code", error.code());
    w.text_element("Message", error.message());
    w.end("Error");
    w.end("Errors");
    w.text_element("RequestID", request_id);
    w.end("Response");
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    struct Sample {
        name: Option<String>,
        tags: Option<Vec<String>>,
        empty: Option<Vec<String>>,
        when: Timestamp,
        flag: bool,
    }

    impl XmlStruct for Sample {
        fn write_members(&self, w: &mut XmlWriter) {
            self.name.write_xml(w, "keyName");
            self.tags.write_xml(w, "tagSet");
            self.empty.write_xml(w, "emptySet");
            self.when.write_xml(w, "createTime");
            self.flag.write_xml(w, "flag");
        }
    }

    #[test]
    fn golden_response() {
        let sample = Sample {
            name: Some("a<b&c".into()),
            tags: Some(vec!["x".into(), "y".into()]),
            empty: Some(vec![]),
            when: Utc.with_ymd_and_hms(2026, 11, 25, 2, 19, 25).unwrap(),
            flag: true,
        };
        let body = String::from_utf8(render_response("DescribeKeyPairs", &sample, "rid")).unwrap();
        assert_eq!(
            body,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
             <DescribeKeyPairsResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">\
             <keyName>a&lt;b&amp;c</keyName><tagSet><item>x</item><item>y</item></tagSet><emptySet/>\
             <createTime>2026-11-25T02:19:25.000Z</createTime><flag>true</flag>\
             <requestId>rid</requestId></DescribeKeyPairsResponse>"
        );
    }

    /// The text an XML parser reads back is what was written, with what XML 1.0 cannot hold
    /// replaced, whichever path (plain bytes or escaping) wrote it.
    fn read_back(text: &str) -> String {
        let mut w = XmlWriter::new();
        w.text_element("v", text);
        let body = String::from_utf8(w.finish()).unwrap();
        let mut reader = quick_xml::Reader::from_str(&body);
        let mut read = String::new();
        loop {
            match reader.read_event().unwrap() {
                // Line ends as a parser reads them: a raw "\r\n" or "\r" becomes "\n".
                quick_xml::events::Event::Text(t) => read.push_str(&t.xml_content().unwrap()),
                quick_xml::events::Event::GeneralRef(r) => match r.resolve_char_ref().unwrap() {
                    Some(c) => read.push(c),
                    None => read.push_str(quick_xml::escape::resolve_predefined_entity(&r.decode().unwrap()).unwrap()),
                },
                quick_xml::events::Event::Eof => return read,
                _ => {}
            }
        }
    }

    #[test]
    fn text_survives_a_parser() {
        assert_eq!(read_back("i-0123 2026-11-25T02:19:25Z"), "i-0123 2026-11-25T02:19:25Z");
        assert_eq!(read_back("a<b>&'\"c"), "a<b>&'\"c");
        assert_eq!(read_back("line\r\nnext"), "line\r\nnext");
        assert_eq!(read_back("bell\u{7}é\u{FFFF}"), "bell\u{FFFD}é\u{FFFD}");
        assert_eq!(read_back("a\u{2028}b\u{85}c"), "a\u{2028}b\u{85}c");
    }

    proptest::proptest! {
        #[test]
        fn any_text_survives_a_parser(text in "\\PC*|[ -~]*|[\\x00-\\x7f]*") {
            let kept = |c: char| matches!(c, '\r' | '\u{85}' | '\u{2028}');
            let expected: String = text.chars().map(|c| if needs_care(c) && !kept(c) { '\u{FFFD}' } else { c }).collect();
            proptest::prop_assert_eq!(read_back(&text), expected);
        }
    }

    #[test]
    fn golden_error_envelope() {
        let body = render_error(&Ec2Error::new(crate::Code::AuthFailure, "no <such> key"), "r-1");
        assert_eq!(
            String::from_utf8(body).unwrap(),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error><Code>AuthFailure</Code>\
             <Message>no &lt;such&gt; key</Message></Error></Errors><RequestID>r-1</RequestID></Response>"
        );
    }

    #[test]
    fn operations_without_output_return_true() {
        let body = String::from_utf8(render_response("DeleteTags", &ReturnTrue, "r")).unwrap();
        assert!(body.contains("<return>true</return><requestId>r</requestId></DeleteTagsResponse>"));
    }

    use chrono::Utc;
}
