//! Method and path to handler; the table mirrors `docs/PROTOCOL.md`. Each
//! route's methods, and the 405 for any other, sit together. A file route's
//! `{machine}/{path...}` is resolved here, once, into the caller's typed
//! [`FileTarget`](crate::space::FileTarget) (writable only for the device's
//! own machine).

use super::api::{
    account, admin, alerts, archive, batch, builds, chunks, download, files, history, metrics,
    policy, uploads,
};
use super::auth::require;
use super::core::request::machine_segment;
use super::core::{ApiError, Handled, Reply};
use super::ctx::Ctx;
use super::pages;
use crate::space::MachineKey;
use tiny_http::Method::{Delete, Get, Head, Post, Put};
use tiny_http::Request;

/// The `Allow` of a route that only reads.
const READ: &str = "GET, HEAD";
const POST: &str = "POST";

fn allow(allow: &'static str) -> Handled {
    Err(ApiError::MethodNotAllowed { allow })
}

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

    // Routes that need no identity.
    match segs.as_slice() {
        ["healthz"] => {
            return match method {
                Get | Head => Ok(Reply::text(200, "ok\n")),
                _ => allow(READ),
            }
        }
        ["assets", "app.js"] => {
            return match method {
                Get | Head => Ok(pages::layout::app_js(None)),
                _ => allow(READ),
            }
        }
        ["assets", version, "app.js"] => {
            return match method {
                Get | Head => Ok(pages::layout::app_js(Some(version))),
                _ => allow(READ),
            }
        }
        // A scraper's token is not a device token: checked before identify.
        ["metrics"] if ctx.metrics_token.is_some() => {
            return match method {
                Get | Head => {
                    let who = ctx.auth.identify(req).ok().flatten();
                    metrics::metrics(ctx, req, who)
                }
                _ => allow(READ),
            }
        }
        ["api", "v1", "login"] => {
            return match method {
                Post => account::login(ctx, req),
                _ => allow(POST),
            }
        }
        ["api", "v1", "enroll"] => {
            return match method {
                Post => account::enroll(ctx, req),
                _ => allow(POST),
            }
        }
        // Client programs: the same for everyone, fetched before a login.
        ["api", "v1", "clients"] => {
            return match method {
                Get | Head => builds::list(ctx),
                _ => allow(READ),
            }
        }
        ["clients", file] => {
            return match method {
                Get | Head => builds::download(ctx, req, file),
                _ => allow(READ),
            }
        }
        _ => {}
    }

    // A presented token must be valid whatever the route.
    let who = ctx.auth.identify(req)?;
    if let Some(machine) = who
        .as_ref()
        .and_then(|w| Some((&w.user, w.machine.as_ref()?)))
    {
        ctx.clients
            .seen(MachineKey::new(machine.0, machine.1).as_str());
    }
    let me = || require(who.clone());

    match segs.as_slice() {
        // Pages.
        [""] => match method {
            Get | Head => match &who {
                Some(w) => pages::home::home(ctx, w),
                None => Ok(pages::login::login_page(ctx, 200, None)),
            },
            _ => allow(READ),
        },
        ["files"] => match method {
            Get | Head => pages::home::files_page(ctx, req, &me()?),
            _ => allow(READ),
        },
        ["search"] => match method {
            Get | Head => pages::browse::search(ctx, req, &me()?),
            _ => allow(READ),
        },
        ["browse", machine, rest @ ..] => match method {
            Get | Head => pages::browse::browse(ctx, req, &me()?, machine, rest),
            _ => allow(READ),
        },
        ["versions", machine, rest @ ..] if !rest.is_empty() => match method {
            Get | Head => {
                let who = me()?;
                pages::versions::versions_page(ctx, &who, who.file(machine, rest)?)
            }
            _ => allow(READ),
        },
        ["login"] => match method {
            Post => pages::login::login(ctx, req),
            // Someone who types the address: the login form is the home page's.
            Get | Head => Ok(Reply::new(303).header("Location", "/")),
            _ => allow("GET, HEAD, POST"),
        },
        ["logout"] => match method {
            Post => pages::login::logout(ctx, req, who),
            _ => allow(POST),
        },
        ["register"] => match method {
            Get | Head => pages::register::page(ctx, req),
            Post => pages::register::submit(ctx, req),
            _ => allow("GET, HEAD, POST"),
        },
        ["add-machine"] => match method {
            Get | Head => pages::add_machine::page(ctx, req, who),
            _ => allow(READ),
        },
        ["add-machine", "codes"] => match method {
            Post => pages::add_machine::create_code(ctx, req, who),
            _ => allow(POST),
        },
        ["add-machine", "codes", id, "revoke"] => match method {
            Post => pages::add_machine::revoke_code(ctx, req, who, id),
            _ => allow(POST),
        },
        ["devices", id, "revoke"] => match method {
            Post => pages::login::revoke_device(ctx, req, who, id),
            _ => allow(POST),
        },
        ["policy"] => match method {
            Get | Head => pages::policy::page(ctx, req, &me()?),
            Post => pages::policy::save(ctx, req, who),
            _ => allow("GET, HEAD, POST"),
        },
        ["policy", "ignored"] => match method {
            Post => pages::policy::add_ignored(ctx, req, who),
            _ => allow(POST),
        },
        ["policy", "ignored", id, "remove"] => match method {
            Post => pages::policy::remove_ignored(ctx, req, who, id),
            _ => allow(POST),
        },
        ["alerts"] => match method {
            Get | Head => pages::alerts::page(ctx, req, &me()?),
            _ => allow(READ),
        },
        ["alerts", "targets"] => match method {
            Post => pages::alerts::add_target(ctx, req, who),
            _ => allow(POST),
        },
        ["alerts", "targets", id, "remove"] => match method {
            Post => pages::alerts::remove_target(ctx, req, who, id),
            _ => allow(POST),
        },
        ["alerts", "test"] => match method {
            Post => pages::alerts::test(ctx, req, who),
            _ => allow(POST),
        },
        ["alerts", "smtp"] => match method {
            Post => pages::alerts::save_smtp(ctx, req, who),
            _ => allow(POST),
        },
        ["alerts", "when"] => match method {
            Post => pages::alerts::save_when(ctx, req, who),
            _ => allow(POST),
        },
        ["alerts", "machines"] => match method {
            Post => pages::alerts::save_machines(ctx, req, who),
            _ => allow(POST),
        },
        ["admin"] => match method {
            Get | Head => pages::admin::page(ctx, &me()?),
            _ => allow(READ),
        },
        ["admin", "tree", user, machine, rest @ ..] => match method {
            Get | Head => pages::browse::admin_tree(ctx, req, &me()?, user, machine, rest),
            _ => allow(READ),
        },
        ["admin", "invites"] => match method {
            Post => pages::admin::create_invite(ctx, req, who),
            _ => allow(POST),
        },
        ["admin", "invites", id, "revoke"] => match method {
            Post => pages::admin::revoke_invite(ctx, req, who, id),
            _ => allow(POST),
        },
        ["admin", "invites", ..] => allow(POST),
        ["admin", "updates"] => match method {
            Post => pages::admin::set_update(ctx, req, who),
            _ => allow(POST),
        },

        // Contents.
        ["download", machine, rest @ ..] if !rest.is_empty() => match method {
            Get | Head => download::download(ctx, req, me()?.file(machine, rest)?),
            _ => allow(READ),
        },
        ["preview", machine, rest @ ..] if !rest.is_empty() => match method {
            Get | Head => download::preview(ctx, req, me()?.file(machine, rest)?),
            _ => allow(READ),
        },
        ["archive"] => match method {
            Get | Head => archive::archive(ctx, req, &me()?),
            _ => allow(READ),
        },

        // The API.
        ["api", "v1", "files"] => match method {
            Get | Head => files::list(ctx, req, &me()?),
            _ => allow(READ),
        },
        ["api", "v1", "files", machine, rest @ ..] if !rest.is_empty() => match method {
            Put => files::upload(ctx, req, me()?.writable_file(machine, rest)?),
            Post => files::record(ctx, req, me()?.writable_file(machine, rest)?),
            Delete => files::delete(ctx, me()?.writable_file(machine, rest)?),
            _ => allow("PUT, POST, DELETE"),
        },
        ["api", "v1", "batch", machine] => match method {
            Post => {
                let who = me()?;
                batch::batch(ctx, req, who.writable_machine(&machine_segment(machine)?)?)
            }
            _ => allow(POST),
        },
        ["api", "v1", "chunks", machine, "missing"] => match method {
            Post => {
                let who = me()?;
                chunks::missing(ctx, req, who.writable_machine(&machine_segment(machine)?)?)
            }
            _ => allow(POST),
        },
        ["api", "v1", "chunks", machine] => match method {
            Post => {
                let who = me()?;
                chunks::upload(ctx, req, who.writable_machine(&machine_segment(machine)?)?)
            }
            _ => allow(POST),
        },
        ["api", "v1", "manifests", machine, rest @ ..] if !rest.is_empty() => match method {
            Post => chunks::commit(ctx, req, me()?.writable_file(machine, rest)?),
            _ => allow(POST),
        },
        ["api", "v1", "versions", machine, rest @ ..] if !rest.is_empty() => match method {
            Get | Head => files::versions(ctx, me()?.file(machine, rest)?),
            _ => allow(READ),
        },
        ["api", "v1", "uploads"] => match method {
            Post => uploads::start(ctx, req, &me()?),
            _ => allow(POST),
        },
        ["api", "v1", "uploads", id] => match method {
            Get | Head => uploads::state(ctx, &me()?, id),
            Put => uploads::piece(ctx, req, &me()?, id),
            Delete => uploads::cancel(ctx, req, &me()?, id),
            _ => allow("GET, HEAD, PUT, DELETE"),
        },
        ["api", "v1", "devices"] => match method {
            Get | Head => account::devices(ctx, who),
            _ => allow(READ),
        },
        ["api", "v1", "devices", id] => match method {
            Delete => account::revoke(ctx, req, who, id),
            _ => allow("DELETE"),
        },
        ["api", "v1", "session"] => match method {
            Get | Head => account::session(who),
            _ => allow(READ),
        },
        ["api", "v1", "status"] => match method {
            Post => admin::report(ctx, req, &me()?),
            _ => allow(POST),
        },
        ["api", "v1", "policy"] => match method {
            Get | Head => policy::effective(ctx, req, &me()?),
            _ => allow(READ),
        },
        ["api", "v1", "ignored-errors"] => match method {
            Get | Head => policy::ignored_list(ctx, &me()?),
            Post => policy::ignored_add(ctx, req, &me()?),
            _ => allow("GET, HEAD, POST"),
        },
        ["api", "v1", "ignored-errors", id] => match method {
            Delete => policy::ignored_remove(ctx, req, &me()?, id),
            _ => allow("DELETE"),
        },
        ["api", "v1", "policies", "locked"] => match method {
            Put => policy::set_locked(ctx, req, &me()?),
            _ => allow("PUT"),
        },
        ["api", "v1", "policies", rest @ ..] => {
            let scope = policy::scope(rest)?;
            match method {
                Get | Head => policy::layer(ctx, &me()?, &scope),
                Put => policy::set_layer(ctx, req, &me()?, &scope),
                _ => allow("GET, HEAD, PUT"),
            }
        }
        ["api", "v1", "alerts"] => match method {
            Get | Head => alerts::show(ctx, &me()?),
            Put => alerts::replace(ctx, req, &me()?),
            _ => allow("GET, HEAD, PUT"),
        },
        ["api", "v1", "alerts", "targets"] => match method {
            Post => alerts::add_target(ctx, req, &me()?),
            _ => allow(POST),
        },
        ["api", "v1", "alerts", "targets", id] => match method {
            Delete => alerts::remove_target(ctx, req, &me()?, id),
            _ => allow("DELETE"),
        },
        ["api", "v1", "alerts", "machines", u, m] => match method {
            Put => alerts::set_machine(ctx, req, &me()?, &format!("{u}/{m}")),
            _ => allow("PUT"),
        },
        ["api", "v1", "alerts", "test"] => match method {
            Post => alerts::test(ctx, req, &me()?),
            _ => allow(POST),
        },
        ["api", "v1", "admin", "clients"] => match method {
            Get | Head => admin::clients_json(ctx, &me()?),
            _ => allow(READ),
        },
        ["api", "v1", "admin", "history"] => match method {
            Get | Head => history::server(ctx, req, &me()?),
            _ => allow(READ),
        },
        ["api", "v1", "history"] => match method {
            Get | Head => history::mine(ctx, req, &me()?),
            _ => allow(READ),
        },
        ["api", "v1", "activity", machine, rest @ ..] => match method {
            Get | Head => history::activity(ctx, req, &me()?, machine, rest),
            _ => allow(READ),
        },
        ["api", "v1", "admin", "health"] => match method {
            Get | Head => metrics::health_json(ctx, &me()?),
            _ => allow(READ),
        },
        ["metrics"] => match method {
            Get | Head => metrics::metrics(ctx, req, who),
            _ => allow(READ),
        },
        _ => Err(ApiError::NotFound),
    }
}
