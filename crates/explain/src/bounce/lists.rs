//! Notices from mailing-list managers that refused or dropped a post: fml's "You … are not
//! member" and "Loop Alert" messages. They are not delivery reports, but each says a post to
//! the list did not go out, and why.

use super::Failure;
use super::mime::Headers;
use super::prose;

/// Header with which fml marks every message it sends (`X-MLServer: fml [fml 4.0.3 …]`).
const FML_HEADER: &str = "x-mlserver";

/// The refused post of an fml notice: the list's address (the first address the notice
/// names, else its sender) as the recipient, and the subject and notice as the diagnostic.
/// `None` when the message is not an fml notice or names nobody.
pub fn read(headers: &Headers, subject: &str, note: &str) -> Option<Failure> {
    if !headers.get(FML_HEADER).is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("fml")) {
        return None;
    }
    let own: Vec<String> = headers.all("to").flat_map(prose::all_addresses).collect();
    let named =
        prose::all_addresses(note).into_iter().find(|a| !own.iter().any(|o| o.eq_ignore_ascii_case(a)));
    let recipient = named.or_else(|| headers.all("from").flat_map(prose::all_addresses).next())?;
    Some(Failure {
        recipient,
        diagnostic: first_paragraph(note).unwrap_or(subject).trim().to_string(),
        in_notice: true,
        ..Failure::default()
    })
}

/// The notice's first paragraph with words in it.
fn first_paragraph(note: &str) -> Option<&str> {
    note.split("\n\n").map(str::trim).find(|p| p.chars().any(char::is_alphanumeric))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bounce::mime;

    fn headers(raw: &str) -> Headers {
        mime::leaves(raw.as_bytes()).0
    }

    #[test]
    fn fml_notice_names_the_list() {
        let h = headers(
            "From: ml-admin@example.org\r\nTo: bob@example.net\r\nX-MLServer: fml [fml 4.0.3 release]\r\n\r\nbody\r\n",
        );
        let f = read(
            &h,
            "You bob@example.net are not member (ml ML)",
            "You are not a member of this mailing list <ml@example.org>.",
        )
        .expect("an fml notice");
        assert_eq!(f.recipient, "ml@example.org");
        assert_eq!(f.diagnostic, "You are not a member of this mailing list <ml@example.org>.");
    }

    #[test]
    fn other_messages_are_not_fml_notices() {
        let h = headers("From: a@example.org\r\nTo: b@example.net\r\n\r\nbody\r\n");
        assert!(read(&h, "hello", "You are not a member of this mailing list <ml@example.org>.").is_none());
    }
}
