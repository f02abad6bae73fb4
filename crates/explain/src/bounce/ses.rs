//! Amazon SES event notifications (delivered by SNS as JSON in a mail body): the
//! `bounce` and `complaint` objects of the SES notification format.

use serde_json::Value;

use super::Failure;

/// What an SES notification reports: failures, and whether they are complaints.
pub struct SesReport {
    pub complaint: bool,
    pub failures: Vec<Failure>,
}

/// Reads an SES notification from a mail body, or `None` when the body is not one. The
/// SNS envelope carries the SES event as a JSON string in its `Message` field.
pub fn read(body: &str) -> Option<SesReport> {
    let start = body.find('{')?;
    let end = body.rfind('}')?;
    if end <= start {
        return None;
    }
    // Mail transport may wrap long lines; JSON never holds a raw newline inside a string.
    let json: String = body[start..=end].chars().filter(|c| *c != '\n' && *c != '\r').collect();
    let outer: Value = serde_json::from_str(&json).ok()?;
    let event = match outer.get("Message").and_then(Value::as_str) {
        Some(inner) => serde_json::from_str::<Value>(inner).ok()?,
        None => outer,
    };
    let kind = event.get("notificationType").or_else(|| event.get("eventType")).and_then(Value::as_str)?;
    match kind {
        "Bounce" => {
            let b = event.get("bounce")?;
            let reporting = b.get("reportingMTA").and_then(Value::as_str).map(super::fields::typed_text);
            let permanent = b.get("bounceType").and_then(Value::as_str) == Some("Permanent");
            let failures = b
                .get("bouncedRecipients")?
                .as_array()?
                .iter()
                .filter_map(|r| {
                    let addr = r.get("emailAddress").and_then(Value::as_str)?;
                    let text = |k: &str| r.get(k).and_then(Value::as_str).map(str::to_string);
                    Some(Failure {
                        recipient: super::fields::typed_address(addr)?,
                        action: text("action")
                            .or_else(|| Some(if permanent { "failed" } else { "delayed" }.into())),
                        status: text("status").and_then(|s| super::status_in(&s)),
                        diagnostic: text("diagnosticCode")
                            .map(|d| super::fields::typed_text(&d))
                            .unwrap_or_default(),
                        remote_mta: reporting.clone(),
                        ..Failure::default()
                    })
                })
                .collect();
            Some(SesReport { complaint: false, failures })
        }
        "Complaint" => {
            let c = event.get("complaint")?;
            let kind = c.get("complaintFeedbackType").and_then(Value::as_str).unwrap_or("abuse").to_string();
            let failures = c
                .get("complainedRecipients")?
                .as_array()?
                .iter()
                .filter_map(|r| r.get("emailAddress").and_then(Value::as_str))
                .filter_map(super::fields::typed_address)
                .map(|a| Failure { recipient: a, feedback_type: Some(kind.clone()), ..Failure::default() })
                .collect();
            Some(SesReport { complaint: true, failures })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sns_wrapped_bounce() {
        let body = r#"{"Type":"Notification","Message":"{\"notificationType\":\"Bounce\",\"bounce\":{\"bounceType\":\"Permanent\",\"bouncedRecipients\":[{\"emailAddress\":\"a@example.com\",\"status\":\"5.1.1\",\"diagnosticCode\":\"smtp; 550 5.1.1 user
 unknown\"}]}}"}"#;
        let r = read(body).unwrap();
        assert!(!r.complaint);
        assert_eq!(r.failures[0].recipient, "a@example.com");
        assert_eq!(r.failures[0].status.as_deref(), Some("5.1.1"));
        assert_eq!(r.failures[0].diagnostic, "550 5.1.1 user unknown");
    }

    #[test]
    fn not_json_is_none() {
        assert!(read("hello {not json}").is_none());
    }
}
