//! `application/x-www-form-urlencoded`: form bodies and query strings.

use super::body::small_body;
use super::reply::ApiError;
use percent_encoding::percent_decode_str;
use std::collections::HashMap;
use tiny_http::Request;

/// The largest form body read.
const MAX_FORM: u64 = 16 * 1024;

/// A form's fields, by name.
pub type Form = HashMap<String, String>;

/// An `application/x-www-form-urlencoded` body.
pub fn read_form(req: &mut Request) -> Result<Form, ApiError> {
    let body = small_body(req, MAX_FORM)?;
    let text =
        String::from_utf8(body).map_err(|_| ApiError::bad("bad_form", "the form is not UTF-8"))?;
    Ok(parse_form(&text))
}

/// Pairs of a form or query string; pairs that do not decode are left out.
pub fn parse_form(text: &str) -> Form {
    text.split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let dec = |s: &str| {
                percent_decode_str(&s.replace('+', " "))
                    .decode_utf8()
                    .ok()
                    .map(|c| c.into_owned())
            };
            Some((dec(k)?, dec(v)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode() {
        let f = parse_form("user=al%C3%AFce&password=a+b%26c%3D&empty=&bad=%ff");
        assert_eq!(f["user"], "alïce");
        assert_eq!(f["password"], "a b&c=");
        assert_eq!(f["empty"], "");
        assert!(!f.contains_key("bad"));
    }
}
