//! Delivering one notice: mail through the configured SMTP server
//! (lettre's blocking transport: STARTTLS, TLS or plain, with or without
//! authentication), or a JSON POST to a webhook (ureq) in one of three
//! shapes. Every attempt ends within [`TIMEOUT`]; the error says what
//! failed, never a password or token.

use super::settings::{Security, Shape, Smtp, Target};
use super::Delivery;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};
use serde_json::json;
use std::time::Duration;

pub const TIMEOUT: Duration = Duration::from_secs(20);

/// Sends `d` to `t`.
pub fn deliver(t: &Target, d: &Delivery, smtp: Option<&Smtp>) -> Result<(), String> {
    match (&t.email, &t.webhook) {
        (Some(to), _) => mail(smtp.ok_or("no SMTP server is set for alert mail")?, to, d),
        (_, Some(url)) => webhook(url, t.shape, t.token.as_deref(), d),
        _ => Err("the target has neither an address nor a webhook".into()),
    }
}

fn mail(smtp: &Smtp, to: &str, d: &Delivery) -> Result<(), String> {
    let message = Message::builder()
        .from(smtp.from.parse().map_err(|e| format!("smtp.from: {e}"))?)
        .to(to.parse().map_err(|e| format!("{to}: {e}"))?)
        .subject(format!("[Nimbus] {}", d.title))
        .header(ContentType::TEXT_PLAIN)
        .body(format!("{}\n\n-- \nNimbus backup server\n", d.message))
        .map_err(|e| format!("cannot build the mail: {e}"))?;
    let tls = || -> Result<TlsParameters, String> {
        let mut b = TlsParameters::builder(smtp.host.clone());
        if let Some(pem) = &smtp.ca {
            b = b.add_root_certificate(
                Certificate::from_pem(pem.as_bytes()).map_err(|e| format!("smtp.ca: {e}"))?,
            );
        }
        b.build_rustls()
            .map_err(|e| format!("SMTP server {}: {e}", smtp.host))
    };
    let builder = SmtpTransport::builder_dangerous(&smtp.host);
    let builder = match smtp.security {
        Security::Starttls => builder.tls(Tls::Required(tls()?)),
        Security::Tls => builder.tls(Tls::Wrapper(tls()?)),
        Security::None => builder,
    };
    let mut builder = builder
        .port(smtp.port.unwrap_or(smtp.security.default_port()))
        .timeout(Some(TIMEOUT));
    if let Some(user) = &smtp.username {
        builder = builder.credentials(Credentials::new(
            user.clone(),
            smtp.password.clone().unwrap_or_default(),
        ));
    }
    builder.build().send(&message).map(|_| ()).map_err(|e| {
        format!(
            "SMTP server {}:{}: {e}",
            smtp.host,
            smtp.port.unwrap_or(smtp.security.default_port())
        )
    })
}

/// The JSON body and the address it goes to.
pub fn webhook_body(url: &str, shape: Shape, d: &Delivery) -> (String, serde_json::Value) {
    let urgent = matches!(d.event, super::Event::Alert | super::Event::Reminder);
    match shape {
        Shape::Generic => (
            url.to_string(),
            json!({
                "source": "nimbus",
                "event": d.event.as_str(),
                "condition": d.condition.map(|c| c.as_str()),
                "machine": d.machine,
                "title": d.title,
                "message": d.message,
                "at": d.created,
            }),
        ),
        Shape::Ntfy => {
            // https://ntfy.sh/TOPIC: JSON is published to the server's root.
            let trimmed = url.trim_end_matches('/');
            let (base, topic) = trimmed.rsplit_once('/').unwrap_or((trimmed, ""));
            (
                format!("{base}/"),
                json!({
                    "topic": topic,
                    "title": d.title,
                    "message": d.message,
                    "priority": if urgent { 4 } else { 3 },
                    "tags": [if urgent { "warning" } else { "white_check_mark" }],
                }),
            )
        }
        Shape::Gotify => (
            format!("{}/message", url.trim_end_matches('/')),
            json!({
                "title": d.title,
                "message": d.message,
                "priority": if urgent { 8 } else { 4 },
            }),
        ),
    }
}

fn webhook(url: &str, shape: Shape, token: Option<&str>, d: &Delivery) -> Result<(), String> {
    let (to, body) = webhook_body(url, shape, d);
    let agent = ureq::AgentBuilder::new()
        .timeout(TIMEOUT)
        .redirects(0)
        .build();
    let mut req = agent.post(&to).set("Content-Type", "application/json").set(
        "User-Agent",
        concat!("nimbus-server/", env!("CARGO_PKG_VERSION")),
    );
    if let Some(tok) = token {
        req = match shape {
            Shape::Gotify => req.set("X-Gotify-Key", tok),
            _ => req.set("Authorization", &format!("Bearer {tok}")),
        };
    }
    match req.send_string(&body.to_string()) {
        Ok(_) => Ok(()),
        Err(ureq::Error::Status(code, _)) => Err(format!("webhook {to} answered {code}")),
        Err(ureq::Error::Transport(e)) => Err(format!("webhook {to}: {}", e.kind())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::{Condition, Event};

    #[test]
    fn webhook_shapes() {
        let d = Delivery {
            id: 1,
            target: "t".into(),
            event: Event::Alert,
            condition: Some(Condition::Stale),
            machine: Some("alice/laptop".into()),
            title: "alice/laptop: no backup".into(),
            message: "m".into(),
            created: 5,
            attempts: 0,
            next_try: 5,
            sent_at: None,
            last_error: None,
            gave_up: false,
        };
        let (to, b) = webhook_body("https://ntfy.sh/backups", Shape::Ntfy, &d);
        assert_eq!(to, "https://ntfy.sh/");
        assert_eq!(b["topic"], "backups");
        assert_eq!(b["priority"], 4);
        let (to, b) = webhook_body("https://gotify.example/", Shape::Gotify, &d);
        assert_eq!(to, "https://gotify.example/message");
        assert_eq!(b["priority"], 8);
        let (to, b) = webhook_body("http://127.0.0.1:9/hook", Shape::Generic, &d);
        assert_eq!(to, "http://127.0.0.1:9/hook");
        assert_eq!(b["condition"], "stale");
        assert_eq!(b["machine"], "alice/laptop");
        assert_eq!(b["event"], "alert");
    }
}
