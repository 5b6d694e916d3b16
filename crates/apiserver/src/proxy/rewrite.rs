//! Keeping a proxied application's links inside the proxy, as upstream's proxy transport
//! does for `pods/proxy` and `services/proxy`: a redirect's `Location` and, in `text/html`
//! answers, the URL-valued attributes of tags are rewritten when they point at the backend
//! (an absolute path, or an absolute URL naming the backend or the host the client used)
//! so they start with the proxy prefix `/api/v1/namespaces/NS/pods/NAME/proxy`. Relative
//! links and links to other hosts are left alone.

use flate2::Compression;
use std::io::{Read, Write};

/// What a rewrite needs to know about the proxied request.
#[derive(Debug, Clone)]
pub struct Rewriter {
    /// The proxy prefix, e.g. `/api/v1/namespaces/default/pods/web:8080/proxy`.
    pub prefix: String,
    /// The backend's `host[:port]` (links naming it are the backend's own).
    pub backend_host: String,
    /// The `Host` the client addressed the API server by.
    pub request_host: String,
}

/// A URL split the way Go's `url.Parse` splits it (only what rewriting needs).
struct Url<'a> {
    scheme: &'a str,
    /// `Some` when the URL has an authority (`//host`), with any `user@` removed.
    host: Option<&'a str>,
    path: &'a str,
    query: Option<&'a str>,
    fragment: Option<&'a str>,
}

impl<'a> Url<'a> {
    fn parse(s: &'a str) -> Option<Url<'a>> {
        if s.bytes().any(|b| b < 0x20 || b == 0x7f) {
            return None;
        }
        let (rest, fragment) = match s.split_once('#') {
            Some((r, f)) => (r, Some(f)),
            None => (s, None),
        };
        let (scheme, rest) = split_scheme(rest)?;
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (host, path) = match rest.strip_prefix("//") {
            Some(auth) if !scheme.is_empty() || !auth.starts_with('/') => {
                let end = auth.find('/').unwrap_or(auth.len());
                let authority = &auth[..end];
                let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
                (Some(host), &auth[end..])
            }
            _ => (None, rest),
        };
        Some(Url {
            scheme,
            host,
            path,
            query,
            fragment,
        })
    }
}

/// `(scheme, rest)`; the scheme is empty when there is none. `None` for a URL starting
/// with `:` (Go: "missing protocol scheme").
fn split_scheme(s: &str) -> Option<(&str, &str)> {
    for (i, c) in s.char_indices() {
        match c {
            'a'..='z' | 'A'..='Z' => {}
            '0'..='9' | '+' | '-' | '.' if i > 0 => {}
            ':' if i == 0 => return None,
            ':' => return Some((&s[..i], &s[i + 1..])),
            _ => return Some(("", s)),
        }
    }
    Some(("", s))
}

/// Go's `path.Clean` (lexical: no `.`, no `..` past the root, no doubled slashes).
pub fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|s| *s != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            s => out.push(s),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// Go's `path.Join(a, b)` for a non-empty `a`.
pub fn join(a: &str, b: &str) -> String {
    if b.is_empty() {
        clean(a)
    } else {
        clean(&format!("{a}/{b}"))
    }
}

impl Rewriter {
    /// One URL as upstream's `rewriteURL`: unchanged unless it is an absolute path or
    /// names the backend (or the client's host); then the scheme and host go (kept only
    /// when the URL names the client's host) and the path gets the proxy prefix, unless it
    /// already has it.
    pub fn rewrite_url(&self, target: &str) -> String {
        let Some(url) = Url::parse(target) else {
            return target.to_string();
        };
        let host = url.host.unwrap_or("");
        let different_host =
            !host.is_empty() && host != self.backend_host && host != self.request_host;
        if different_host || !url.path.starts_with('/') {
            return target.to_string();
        }
        let keep_origin = !host.is_empty() && host == self.request_host;
        let path = if url.path.starts_with(&self.prefix) {
            url.path.to_string()
        } else {
            let mut p = join(&self.prefix, url.path);
            if url.path.ends_with('/') && !p.ends_with('/') {
                p.push('/');
            }
            p
        };
        let mut out = String::new();
        if keep_origin {
            if !url.scheme.is_empty() {
                out.push_str(url.scheme);
                out.push(':');
            }
            out.push_str("//");
            out.push_str(host);
        }
        out.push_str(&path);
        if let Some(q) = url.query {
            out.push('?');
            out.push_str(q);
        }
        if let Some(f) = url.fragment {
            out.push('#');
            out.push_str(f);
        }
        out
    }

    /// An HTML body (possibly gzip- or deflate-encoded, as `Content-Encoding` says) with
    /// its links rewritten, encoded the same way; `None` when the encoding is one upstream
    /// does not understand or the body does not decode (then it passes unchanged).
    pub fn rewrite_html_body(&self, body: &[u8], content_encoding: &str) -> Option<Vec<u8>> {
        match content_encoding {
            "" => Some(self.rewrite_html(body)),
            "gzip" => {
                let mut plain = Vec::new();
                flate2::read::GzDecoder::new(body)
                    .read_to_end(&mut plain)
                    .ok()?;
                let mut enc = flate2::write::GzEncoder::new(Vec::new(), Compression::default());
                enc.write_all(&self.rewrite_html(&plain)).ok()?;
                enc.finish().ok()
            }
            // Upstream reads and writes raw DEFLATE here.
            "deflate" => {
                let mut plain = Vec::new();
                flate2::read::DeflateDecoder::new(body)
                    .read_to_end(&mut plain)
                    .ok()?;
                let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), Compression::best());
                enc.write_all(&self.rewrite_html(&plain)).ok()?;
                enc.finish().ok()
            }
            _ => None,
        }
    }

    /// Rewrite the URL-valued attributes of start tags; everything else is copied byte
    /// for byte (comments, text, raw-text elements such as `<script>`).
    pub fn rewrite_html(&self, html: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(html.len() + 256);
        let mut i = 0;
        while let Some(off) = html[i..].iter().position(|&b| b == b'<') {
            let lt = i + off;
            out.extend_from_slice(&html[i..lt]);
            let next = html.get(lt + 1).copied().unwrap_or(0);
            let end = if html[lt..].starts_with(b"<!--") {
                find(html, lt + 4, b"-->").map_or(html.len(), |e| e + 3)
            } else if matches!(next, b'!' | b'?' | b'/') {
                find(html, lt + 1, b">").map_or(html.len(), |e| e + 1)
            } else if next.is_ascii_alphabetic() {
                let tag = StartTag::scan(html, lt);
                self.write_tag(html, &tag, &mut out);
                i = tag.end;
                if let Some(raw) = raw_text_end(html, &tag) {
                    out.extend_from_slice(&html[i..raw]);
                    i = raw;
                }
                continue;
            } else {
                lt + 1
            };
            out.extend_from_slice(&html[lt..end]);
            i = end;
        }
        out.extend_from_slice(&html[i..]);
        out
    }

    fn write_tag(&self, html: &[u8], tag: &StartTag, out: &mut Vec<u8>) {
        let rewritable = url_attributes(&tag.name);
        let mut pos = tag.start;
        for (name, start, end) in &tag.values {
            if !rewritable.contains(&name.as_str()) {
                continue;
            }
            let Ok(value) = std::str::from_utf8(&html[*start..*end]) else {
                continue;
            };
            let new = self.rewrite_url(value);
            if new != value {
                out.extend_from_slice(&html[pos..*start]);
                out.extend_from_slice(new.as_bytes());
                pos = *end;
            }
        }
        out.extend_from_slice(&html[pos..tag.end]);
    }
}

/// The attributes of `tag` that hold URLs (HTML 4.01 and HTML5 attribute indexes).
fn url_attributes(tag: &str) -> &'static [&'static str] {
    match tag {
        "a" | "area" | "base" | "link" => &["href"],
        "applet" => &["codebase"],
        "audio" | "embed" | "script" | "source" => &["src"],
        "blockquote" | "del" | "ins" | "q" => &["cite"],
        "body" => &["background"],
        "button" => &["formaction"],
        "command" => &["icon"],
        "form" => &["action"],
        "frame" | "iframe" => &["longdesc", "src"],
        "head" => &["profile"],
        "html" => &["manifest"],
        "img" => &["longdesc", "src", "usemap"],
        "input" => &["src", "usemap", "formaction"],
        "object" => &["classid", "codebase", "data", "usemap"],
        "video" => &["poster", "src"],
        _ => &[],
    }
}

/// A scanned start tag: its lower-cased name, the byte ranges of its attribute values
/// (with lower-cased attribute names) and where it ends (after `>`, or at the end).
struct StartTag {
    start: usize,
    end: usize,
    name: String,
    values: Vec<(String, usize, usize)>,
}

impl StartTag {
    fn scan(html: &[u8], lt: usize) -> StartTag {
        let n = html.len();
        let mut i = lt + 1;
        let name_start = i;
        while i < n && !is_space(html[i]) && html[i] != b'/' && html[i] != b'>' {
            i += 1;
        }
        let name = String::from_utf8_lossy(&html[name_start..i]).to_ascii_lowercase();
        let mut values = Vec::new();
        loop {
            while i < n && (is_space(html[i]) || html[i] == b'/') {
                i += 1;
            }
            if i >= n {
                break;
            }
            if html[i] == b'>' {
                i += 1;
                break;
            }
            let attr_start = i;
            // The first character may be `=` (it is then part of the name).
            i += 1;
            while i < n && !is_space(html[i]) && !matches!(html[i], b'/' | b'>' | b'=') {
                i += 1;
            }
            let attr = String::from_utf8_lossy(&html[attr_start..i]).to_ascii_lowercase();
            let mut j = i;
            while j < n && is_space(html[j]) {
                j += 1;
            }
            if j >= n || html[j] != b'=' {
                continue;
            }
            j += 1;
            while j < n && is_space(html[j]) {
                j += 1;
            }
            match html.get(j) {
                Some(&q @ (b'"' | b'\'')) => {
                    let close = html[j + 1..]
                        .iter()
                        .position(|&b| b == q)
                        .map_or(n, |p| j + 1 + p);
                    values.push((attr, j + 1, close));
                    i = (close + 1).min(n);
                }
                Some(_) => {
                    let mut k = j;
                    while k < n && !is_space(html[k]) && html[k] != b'>' {
                        k += 1;
                    }
                    values.push((attr, j, k));
                    i = k;
                }
                None => i = j,
            }
        }
        StartTag {
            start: lt,
            end: i,
            name,
            values,
        }
    }
}

/// For elements whose content is not markup (`<script>`, `<style>`, …), where that
/// content ends: at the matching end tag, or the end of the document.
fn raw_text_end(html: &[u8], tag: &StartTag) -> Option<usize> {
    const RAW: [&str; 10] = [
        "iframe",
        "noembed",
        "noframes",
        "noscript",
        "plaintext",
        "script",
        "style",
        "textarea",
        "title",
        "xmp",
    ];
    if !RAW.contains(&tag.name.as_str()) || html[..tag.end].ends_with(b"/>") {
        return None;
    }
    if tag.name == "plaintext" {
        return Some(html.len());
    }
    let close = format!("</{}", tag.name);
    let mut from = tag.end;
    while let Some(p) = find_ignore_case(html, from, close.as_bytes()) {
        let after = html.get(p + close.len()).copied();
        if after.is_none_or(|b| is_space(b) || b == b'/' || b == b'>') {
            return Some(p);
        }
        from = p + 1;
    }
    Some(html.len())
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0c')
}

fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
}

fn find_ignore_case(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
        .map(|p| from + p)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn rw() -> Rewriter {
        Rewriter {
            prefix: "/api/v1/namespaces/default/services/web:http/proxy".into(),
            backend_host: "10.42.0.7:8080".into(),
            request_host: "localhost:8001".into(),
        }
    }

    #[test]
    fn urls_are_rewritten_like_upstream() {
        let r = rw();
        let p = "/api/v1/namespaces/default/services/web:http/proxy";
        for (input, want) in [
            ("/login", format!("{p}/login")),
            ("/a/b/?x=1#top", format!("{p}/a/b/?x=1#top")),
            ("/", format!("{p}/")),
            ("http://10.42.0.7:8080/x", format!("{p}/x")),
            ("https://10.42.0.7:8080/x/../y", format!("{p}/y")),
            // The client's own host keeps its scheme and host.
            (
                "http://localhost:8001/x",
                format!("http://localhost:8001{p}/x"),
            ),
            // Already prefixed: only the backend origin goes.
            (&format!("http://10.42.0.7:8080{p}/z"), format!("{p}/z")),
            // Unchanged: relative, other hosts, opaque, fragments, junk.
            ("x/y", "x/y".into()),
            ("../up", "../up".into()),
            ("http://example.com/x", "http://example.com/x".into()),
            (
                "//cdn.example.com/lib.js",
                "//cdn.example.com/lib.js".into(),
            ),
            ("mailto:a@b", "mailto:a@b".into()),
            ("#frag", "#frag".into()),
            ("?q", "?q".into()),
            (":bad", ":bad".into()),
            ("/bad\u{7}", "/bad\u{7}".into()),
        ] {
            assert_eq!(r.rewrite_url(input), want, "{input}");
        }
    }

    #[test]
    fn path_clean_and_join_match_go() {
        assert_eq!(clean("/a//b/./c/../d/"), "/a/b/d");
        assert_eq!(clean("/../x"), "/x");
        assert_eq!(clean("a/../../b"), "../b");
        assert_eq!(clean(""), ".");
        assert_eq!(join("/p", "/"), "/p");
        assert_eq!(join("/p", ""), "/p");
        assert_eq!(join("/p", "a//b"), "/p/a/b");
    }

    #[test]
    fn html_links_are_rewritten_and_the_rest_kept() {
        let r = rw();
        let p = "/api/v1/namespaces/default/services/web:http/proxy";
        let page = concat!(
            "<!DOCTYPE html><HTML><head><LINK rel=stylesheet HREF=/s.css>",
            "<script src='/app.js'>if (a<b) { x = \"<a href=/no>\"; }</script></head>",
            "<!-- <a href=\"/comment\"> -->",
            "<body><a href=\"/docs/\" class=x>docs</a> <a href=\"rel\">r</a>",
            "<img alt=\"/keep\" src=\"http://10.42.0.7:8080/i.png\"/>",
            "<form action=/post method=post><input type=image src=/b.png></form>",
            "<a href=\"http://other/x\">o</a> 1 < 2 </body></html>"
        );
        let out = String::from_utf8(r.rewrite_html(page.as_bytes())).unwrap();
        let want = format!(
            concat!(
                "<!DOCTYPE html><HTML><head><LINK rel=stylesheet HREF={p}/s.css>",
                "<script src='{p}/app.js'>if (a<b) {{ x = \"<a href=/no>\"; }}</script></head>",
                "<!-- <a href=\"/comment\"> -->",
                "<body><a href=\"{p}/docs/\" class=x>docs</a> <a href=\"rel\">r</a>",
                "<img alt=\"/keep\" src=\"{p}/i.png\"/>",
                "<form action={p}/post method=post><input type=image src={p}/b.png></form>",
                "<a href=\"http://other/x\">o</a> 1 < 2 </body></html>"
            ),
            p = p
        );
        assert_eq!(out, want);
        // A tag cut off at the end of the body is copied as it is.
        assert_eq!(
            r.rewrite_html(b"<a href=\"/x"),
            format!("<a href=\"{p}/x").into_bytes()
        );
    }

    #[test]
    fn compressed_html_is_rewritten_and_recompressed() {
        let r = rw();
        let html = b"<a href=\"/x\">x</a>";
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(html).unwrap();
        let out = r.rewrite_html_body(&gz.finish().unwrap(), "gzip").unwrap();
        let mut plain = String::new();
        flate2::read::GzDecoder::new(&out[..])
            .read_to_string(&mut plain)
            .unwrap();
        assert!(plain.contains("services/web:http/proxy/x"), "{plain}");
        assert_eq!(r.rewrite_html_body(html, "br"), None);
        assert_eq!(r.rewrite_html_body(b"not gzip", "gzip"), None);
    }
}
