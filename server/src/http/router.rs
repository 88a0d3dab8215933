//! Method and path to handler; the table mirrors `docs/PROTOCOL.md`.

use super::reply::{ApiError, Reply};
use super::{
    admin, auth, browse, download, files, health, index, register, restore, upload, web, Ctx,
};
use tiny_http::{Method, Request};

pub type Handled = Result<Reply, ApiError>;

pub fn route(ctx: &Ctx, req: &mut Request) -> Handled {
    let url = req.url().to_string();
    let path = url.split_once('?').map_or(url.as_str(), |(p, _)| p);
    let Some(path) = path.strip_prefix('/') else {
        return Err(ApiError::bad(
            "bad_target",
            "request target must start with '/'",
        ));
    };
    let segs: Vec<&str> = path.split('/').collect();
    let method = req.method().clone();
    let read = matches!(method, Method::Get | Method::Head);
    match segs.as_slice() {
        ["healthz"] if read => return Ok(Reply::text(200, "ok\n")),
        ["assets", "app.js"] if read => {
            return Ok(Reply::new(200)
                .header("Content-Type", "text/javascript; charset=utf-8")
                .header("Cache-Control", "public, max-age=3600")
                .body(super::reply::Body::Bytes(index::APP_JS.as_bytes().to_vec())))
        }
        // A scraper's token is not a device token: checked before identify.
        ["metrics"] if read && ctx.metrics_token.is_some() => {
            let who = auth::identify(ctx, req).ok().flatten();
            return health::metrics(ctx, req, who);
        }
        ["api", "v1", "login"] if method == Method::Post => return auth::login(ctx, req),
        ["api", "v1", "login"] => return Err(ApiError::MethodNotAllowed { allow: "POST" }),
        _ => {}
    }
    // A presented token must be valid whatever the route.
    let who = auth::identify(ctx, req)?;
    match segs.as_slice() {
        [""] if read => match &who {
            Some(w) => index::home(ctx, w),
            None => Ok(web::login_page(ctx, 200, None)),
        },
        ["files"] if read => index::files_page(ctx, req, &auth::require(who)?),
        ["search"] if read => browse::search(ctx, req, &auth::require(who)?),
        ["admin", "tree", user, machine, rest @ ..] if read => {
            browse::admin_tree(ctx, req, &auth::require(who)?, user, machine, rest)
        }
        ["browse", machine, rest @ ..] if read => {
            browse::browse(ctx, req, &auth::require(who)?, machine, rest)
        }
        ["archive"] if read => restore::archive(ctx, req, &auth::require(who)?),
        ["versions", machine, rest @ ..] if !rest.is_empty() && read => {
            restore::versions_page(ctx, &auth::require(who)?, machine, rest)
        }
        ["login"] if method == Method::Post => web::login(ctx, req),
        ["logout"] if method == Method::Post => web::logout(ctx, req, who),
        ["register"] if read => register::page(ctx, req),
        ["register"] if method == Method::Post => register::submit(ctx, req),
        ["devices", id, "revoke"] if method == Method::Post => {
            web::revoke_device(ctx, req, who, id)
        }
        ["admin", "invites"] if method == Method::Post => register::create_invite(ctx, req, who),
        ["admin", "invites", id, "revoke"] if method == Method::Post => {
            register::revoke_invite(ctx, req, who, id)
        }
        ["login"] | ["logout"] | ["devices", _, "revoke"] | ["admin", "invites", ..] => {
            Err(ApiError::MethodNotAllowed { allow: "POST" })
        }
        ["register"] => Err(ApiError::MethodNotAllowed {
            allow: "GET, HEAD, POST",
        }),
        ["admin"] if read => admin::page(ctx, &auth::require(who)?),
        ["api", "v1", "admin", "clients"] if read => admin::clients_json(ctx, &auth::require(who)?),
        ["api", "v1", "admin", "health"] if read => health::health_json(ctx, &auth::require(who)?),
        ["metrics"] if read => health::metrics(ctx, req, who),
        ["api", "v1", "devices"] if read => auth::devices(ctx, who),
        ["api", "v1", "session"] if read => auth::session(who),
        ["api", "v1", "status"] if method == Method::Post => {
            admin::report(ctx, req, &auth::require(who)?)
        }
        ["api", "v1", "status"] => Err(ApiError::MethodNotAllowed { allow: "POST" }),
        ["api", "v1", "devices", id] => match method {
            Method::Delete => auth::revoke(ctx, req, who, id),
            _ => Err(ApiError::MethodNotAllowed { allow: "DELETE" }),
        },
        ["api", "v1", "uploads"] if method == Method::Post => {
            upload::start(ctx, req, &auth::require(who)?)
        }
        ["api", "v1", "uploads"] => Err(ApiError::MethodNotAllowed { allow: "POST" }),
        ["api", "v1", "uploads", id] => match method {
            Method::Get | Method::Head => upload::state(ctx, &auth::require(who)?, id),
            Method::Put => upload::piece(ctx, req, &auth::require(who)?, id),
            Method::Delete => upload::cancel(ctx, req, &auth::require(who)?, id),
            _ => Err(ApiError::MethodNotAllowed {
                allow: "GET, HEAD, PUT, DELETE",
            }),
        },
        ["api", "v1", "files"] if read => files::list(ctx, req, &auth::require(who)?),
        ["api", "v1", "files", machine, rest @ ..] if !rest.is_empty() => match method {
            Method::Put => files::upload(ctx, req, &auth::require(who)?, machine, rest),
            Method::Post => files::record(ctx, req, &auth::require(who)?, machine, rest),
            Method::Delete => files::delete(ctx, &auth::require(who)?, machine, rest),
            _ => Err(ApiError::MethodNotAllowed {
                allow: "PUT, POST, DELETE",
            }),
        },
        ["api", "v1", "versions", machine, rest @ ..] if !rest.is_empty() && read => {
            files::versions(ctx, &auth::require(who)?, machine, rest)
        }
        ["download", machine, rest @ ..] if !rest.is_empty() && read => {
            download::download(ctx, req, &auth::require(who)?, machine, rest)
        }
        [""]
        | ["healthz"]
        | ["archive"]
        | ["api", "v1", "files"]
        | ["api", "v1", "devices"]
        | ["api", "v1", "session"] => Err(ApiError::MethodNotAllowed { allow: "GET, HEAD" }),
        ["api", "v1", "versions", _, rest @ ..] if !rest.is_empty() => {
            Err(ApiError::MethodNotAllowed { allow: "GET, HEAD" })
        }
        ["download" | "versions", _, rest @ ..] if !rest.is_empty() => {
            Err(ApiError::MethodNotAllowed { allow: "GET, HEAD" })
        }
        _ => Err(ApiError::NotFound),
    }
}

/// Decodes the `{machine}/{path...}` part of a route.
pub fn target(machine: &str, rest: &[&str]) -> Result<(String, String), ApiError> {
    let machine = nimbus_common::paths::decode_segment(machine)?;
    nimbus_common::paths::validate_client_name(&machine)?;
    let path = nimbus_common::paths::decode_rel_path(rest.iter().copied())?;
    Ok((machine, path))
}

/// A query parameter of the request target, decoded.
pub fn query_param(req: &Request, name: &str) -> Option<String> {
    let (_, query) = req.url().split_once('?')?;
    super::web::parse_form(query).remove(name)
}

/// The declared `Content-Length`, if any; `400 bad_length` if it is not a
/// number.
pub fn content_length(req: &Request) -> Result<Option<u64>, ApiError> {
    header(req, "Content-Length")
        .map(|v| {
            v.trim()
                .parse::<u64>()
                .map_err(|_| ApiError::bad("bad_length", "Content-Length is not a number"))
        })
        .transpose()
}

/// A small request body (JSON or a form), read whole: at most `limit`
/// bytes, else 413.
pub fn small_body(req: &mut Request, limit: u64) -> Result<Vec<u8>, ApiError> {
    use std::io::Read;
    let mut body = Vec::new();
    req.as_reader()
        .take(limit + 1)
        .read_to_end(&mut body)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::TimedOut => ApiError::BodyTimeout,
            _ => ApiError::bad("body_incomplete", "could not read the request body"),
        })?;
    if body.len() as u64 > limit {
        return Err(ApiError::TooLarge { limit });
    }
    Ok(body)
}

/// The value of a request header, if present and valid text.
pub fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers()
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}
