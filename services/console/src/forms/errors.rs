//! A refused write as the form shows it: each `google.rpc.BadRequest` field violation next to
//! the input it concerns (`span.field-error[data-field=…]`), the rest above the form.

use std::collections::BTreeMap;

use tonic_types::StatusExt;

/// The problems of one posted form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormErrors {
    /// Messages by input name.
    pub fields: BTreeMap<String, Vec<String>>,
    /// Messages no input takes.
    pub form: Vec<String>,
}

impl FormErrors {
    /// Whether there is no problem.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.form.is_empty()
    }

    /// Adds `message` to input `field`.
    pub fn field(&mut self, field: &str, message: impl Into<String>) {
        self.fields
            .entry(field.to_owned())
            .or_default()
            .push(message.into());
    }

    /// The messages of input `field`.
    pub fn of(&self, field: &str) -> &[String] {
        self.fields
            .get(field)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// The problems of a refused write: its field violations placed by `input` (a resource path
    /// to the input name, `None`: no input takes it), or else its message.
    pub fn from_status(
        status: &tonic::Status,
        input: impl Fn(&str) -> Option<&'static str>,
    ) -> Self {
        let mut out = Self::default();
        let violations = status
            .get_details_bad_request()
            .map(|b| b.field_violations)
            .unwrap_or_default();
        if violations.is_empty() {
            out.form.push(status.message().to_owned());
        }
        for v in violations {
            match input(&v.field) {
                Some(f) => out.field(f, v.description),
                None if v.field.is_empty() => out.form.push(v.description),
                None => out.form.push(format!("{}: {}", v.field, v.description)),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::{ErrorDetails, FieldViolation};

    #[test]
    fn violations_go_to_their_inputs_and_the_rest_to_the_form() {
        let details = ErrorDetails::with_bad_request(vec![
            FieldViolation::new("spec.x.address", "not a URL"),
            FieldViolation::new("spec.y", "odd"),
            FieldViolation::new("", "whole"),
        ]);
        let s = <tonic::Status as StatusExt>::with_error_details(
            tonic::Code::InvalidArgument,
            "invalid resource: ...",
            details,
        );
        let e = FormErrors::from_status(&s, |f| f.ends_with(".address").then_some("address"));
        assert_eq!(e.of("address"), ["not a URL"]);
        assert_eq!(e.form, ["spec.y: odd", "whole"]);
        // No details: the message.
        let plain =
            FormErrors::from_status(&tonic::Status::failed_precondition("read-only"), |_| None);
        assert_eq!(plain.form, ["read-only"]);
    }
}
