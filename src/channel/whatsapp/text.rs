//! The rendered form of a WhatsApp message: its body parameters, folded as WhatsApp takes them
//! and written one a line (`{{1}} = ...`), which `preview` shows and `deliver` reads back.

/// How parameter `i` (0-based) is named: as the template's placeholder, `{{1}}`.
pub(super) fn parameter_name(i: usize) -> String {
    format!("{{{{{}}}}}", i + 1)
}

/// A parameter as WhatsApp takes it: every run of whitespace holding a line break or tab, and
/// every run of more than 4 spaces, becomes one space (132018 refuses them); trimmed.
pub fn fold(text: &str) -> String {
    let breaking = |c: char| {
        matches!(
            c,
            '\n' | '\r' | '\t' | '\u{b}' | '\u{c}' | '\u{85}' | '\u{2028}' | '\u{2029}'
        )
    };
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.chars().count() > 4 || run.chars().any(breaking) {
            out.push(' ');
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.trim().chars() {
        if c == ' ' || breaking(c) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// `{{1}} = Anna`: one line of the rendered text per parameter (a folded parameter holds no
/// line break, so the lines are the parameters).
pub(super) fn line(i: usize, value: &str) -> String {
    format!("{} = {value}", parameter_name(i))
}

/// The parameters back from a rendered text, in order.
pub(super) fn parameters_of(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for l in text.lines() {
        let prefix = format!("{} = ", parameter_name(out.len()));
        match l.strip_prefix(&prefix) {
            Some(v) => out.push(v),
            None => continue,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_folded_as_whatsapp_takes_them() {
        assert_eq!(fold("  Anna\nMüller\t\"Q\"  "), "Anna Müller \"Q\"");
        assert_eq!(fold("a    b"), "a    b");
        assert_eq!(fold("a     b"), "a b");
        assert_eq!(fold("a \r\n  b"), "a b");
        assert_eq!(fold("a\u{2028}b"), "a b");
        assert_eq!(fold("\n\t "), "");
        // Non-breaking spaces are text, not layout.
        assert_eq!(
            fold("a\u{a0}\u{a0}\u{a0}\u{a0}\u{a0}b"),
            "a\u{a0}\u{a0}\u{a0}\u{a0}\u{a0}b"
        );
    }

    #[test]
    fn rendered_lines_give_the_parameters_back() {
        let values = ["Anna = Müller", "{{2}} = x", "\\ \" 🎉"];
        let text: Vec<String> = values.iter().enumerate().map(|(i, v)| line(i, v)).collect();
        assert_eq!(parameters_of(&text.join("\n")), values);
        assert!(parameters_of("(the template has no parameters)").is_empty());
    }
}
