//! The page's HTML: escaping (everything a sender or the database wrote
//! goes through [`escape`]) and the layout around each page.

use super::Answer;

/// `s` with `& < > " '` as character references: safe in text and in
/// quoted attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The stylesheet of `/style.css` (CSP `style-src 'self'`: no inline
/// style anywhere).
pub(crate) const STYLE: &str =
    "body{font-family:sans-serif;max-width:50em;margin:2em auto;padding:0 1em;line-height:1.4}\
textarea,input[type=text],input[type=email]{width:100%;box-sizing:border-box}\
pre{background:#f4f4f4;padding:.5em;overflow-x:auto}\
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}\
.error{color:#a00}\n";

/// A whole page: `title` (escaped here) and `body` (HTML, escaped by the
/// caller), answered with `status`.
pub(crate) fn page(status: u16, title: &str, body: &str) -> Answer {
    let title = escape(title);
    Answer {
        status,
        content_type: "text/html; charset=utf-8",
        body: format!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width\">\
<title>{title}</title><link rel=\"stylesheet\" href=\"/style.css\"></head>\n\
<body><h1>{title}</h1>\n{body}\n<p><a href=\"/\">Start again</a></p></body></html>\n"
        ),
        headers: Vec::new(),
    }
}

/// An error page: `text` (escaped here) with `status`.
pub(crate) fn error(status: u16, text: &str) -> Answer {
    page(
        status,
        "Cannot do that",
        &format!("<p class=\"error\" id=\"error\">{}</p>", escape(text)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        let p = error(400, "<b>");
        assert!(p.body.contains("&lt;b&gt;") && !p.body.contains("<b>"));
    }
}
