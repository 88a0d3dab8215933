//! Which files a browser may be shown inline (a preview) rather than
//! only downloaded, as what type, and under which CSP: kinds a browser
//! displays without running anything. HTML, scripts and every other kind
//! are only ever downloaded.

/// What a preview shows a file as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preview {
    Text,
    Image(&'static str),
    Pdf,
    Audio(&'static str),
    Video(&'static str),
}

impl Preview {
    pub fn content_type(self) -> &'static str {
        match self {
            Preview::Text => "text/plain; charset=utf-8",
            Preview::Image(t) | Preview::Audio(t) | Preview::Video(t) => t,
            Preview::Pdf => "application/pdf",
        }
    }
}

/// By the name's extension (case-insensitive); none: no preview.
pub fn preview_kind(name: &str) -> Option<Preview> {
    let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "txt" | "text" | "md" | "log" | "csv" | "tsv" | "json" | "yaml" | "yml" | "toml"
        | "ini" | "conf" | "cfg" | "rs" | "py" | "c" | "h" | "cpp" | "go" | "java" | "sh"
        | "ps1" | "bat" | "sql" | "tex" | "srt" => Preview::Text,
        "jpg" | "jpeg" => Preview::Image("image/jpeg"),
        "png" => Preview::Image("image/png"),
        "gif" => Preview::Image("image/gif"),
        "webp" => Preview::Image("image/webp"),
        "svg" => Preview::Image("image/svg+xml"),
        "pdf" => Preview::Pdf,
        "mp3" => Preview::Audio("audio/mpeg"),
        "ogg" | "oga" => Preview::Audio("audio/ogg"),
        "wav" => Preview::Audio("audio/wav"),
        "m4a" => Preview::Audio("audio/mp4"),
        "flac" => Preview::Audio("audio/flac"),
        "mp4" | "m4v" => Preview::Video("video/mp4"),
        "webm" => Preview::Video("video/webm"),
        _ => return None,
    })
}

/// The CSP of a preview: nothing loads, nothing runs.
pub const PREVIEW_CSP: &str = "default-src 'none'; img-src 'self'; media-src 'self'; \
     style-src 'unsafe-inline'; sandbox; frame-ancestors 'self'";
