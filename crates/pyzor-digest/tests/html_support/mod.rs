//! Inputs shared by the HTML tests: families of pathological strings that
//! grow with `n`. `html_pathological` runs them at about 1 MB; the
//! differential test compares small sizes with CPython.

/// `(name, input, expected output of strip_html)` for size `n`.
pub fn pathological(n: usize) -> Vec<(&'static str, String, String)> {
    let lone_lt = vec!["<"; n.saturating_sub(1)].join(" ");
    vec![
        // unclosed quotes: Python's regex rescans to the end for each one
        (
            "unclosed_quotes",
            format!("x<a{}", " b=\"".repeat(n)),
            "x".into(),
        ),
        (
            "unclosed_quotes_closed",
            format!("x<a{}>y", " b= '".repeat(n)),
            "x y".into(),
        ),
        (
            "double_equals",
            format!("x<a b{}>y", "==\"c".repeat(n)),
            "x y".into(),
        ),
        (
            "many_equals",
            format!("x<a b={}>y", "=".repeat(n)),
            "x y".into(),
        ),
        (
            "tag_spaces",
            format!("x<a{}>y", " ".repeat(n)),
            "x y".into(),
        ),
        ("attrs", format!("x<a{}>y", " b=c".repeat(n)), "x y".into()),
        (
            "comment_dashes",
            format!("x<!--{}", "-- ".repeat(n)),
            "x".into(),
        ),
        (
            "comment_ws_runs",
            format!(
                "x<!--{}-->y",
                format!("--{}", " ".repeat(50)).repeat(n / 50 + 1)
            ),
            "x y".into(),
        ),
        (
            "marked",
            format!("x<![cdata[{}]]>y", "] ] ".repeat(n)),
            "x y".into(),
        ),
        (
            "script_near_ends",
            format!("<script>{}</script>y", "</ script ".repeat(n)),
            "y".into(),
        ),
        ("lone_lt", format!("{}y", "<".repeat(n)), lone_lt),
        ("end_tag_opens", format!("x{}", "</".repeat(n)), "x".into()),
        ("entities", format!("{};", "&amp".repeat(n)), "&".repeat(n)),
        (
            "ampersands",
            format!("{} y", "&".repeat(n)),
            format!("{} y", "&".repeat(n)),
        ),
        ("bogus", format!("{}>y", "<!".repeat(n)), "y".into()),
        ("pi", "<?".repeat(n), String::new()),
    ]
}
