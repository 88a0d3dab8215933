//! File-type icons, drawn as SVG symbols embedded once per page (no icon
//! font, no request): a row shows one with `<use>`.

use maud::{html, Markup, PreEscaped};

/// The kinds of file an icon tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Folder,
    Image,
    Audio,
    Video,
    Pdf,
    Archive,
    Code,
    Text,
    File,
}

impl Kind {
    fn id(self) -> &'static str {
        match self {
            Kind::Folder => "folder",
            Kind::Image => "image",
            Kind::Audio => "audio",
            Kind::Video => "video",
            Kind::Pdf => "pdf",
            Kind::Archive => "archive",
            Kind::Code => "code",
            Kind::Text => "text",
            Kind::File => "file",
        }
    }

    /// What a file's name says it is, by its extension.
    pub fn of_name(name: &str) -> Kind {
        let ext = match name.rsplit_once('.') {
            Some((stem, ext)) if !stem.is_empty() => ext.to_ascii_lowercase(),
            _ => return Kind::File,
        };
        match ext.as_str() {
            "jpg" | "jpeg" | "png" | "gif" | "webp" | "svg" | "heic" | "heif" | "bmp" | "tif"
            | "tiff" | "avif" | "raw" | "cr2" | "cr3" | "nef" | "arw" | "dng" => Kind::Image,
            "mp3" | "flac" | "wav" | "ogg" | "oga" | "opus" | "m4a" | "aac" | "wma" => Kind::Audio,
            "mp4" | "m4v" | "mov" | "mkv" | "webm" | "avi" | "wmv" | "mpg" | "mpeg" => Kind::Video,
            "pdf" => Kind::Pdf,
            "zip" | "tar" | "gz" | "tgz" | "bz2" | "xz" | "zst" | "7z" | "rar" | "iso" | "dmg" => {
                Kind::Archive
            }
            "rs" | "py" | "js" | "ts" | "c" | "h" | "cpp" | "hpp" | "cs" | "go" | "java" | "kt"
            | "rb" | "php" | "sh" | "ps1" | "bat" | "html" | "htm" | "css" | "json" | "toml"
            | "yaml" | "yml" | "xml" | "sql" => Kind::Code,
            "txt" | "md" | "log" | "csv" | "doc" | "docx" | "odt" | "rtf" | "xls" | "xlsx"
            | "ods" | "ppt" | "pptx" | "odp" | "pages" | "numbers" | "key" | "eml" => Kind::Text,
            _ => Kind::File,
        }
    }
}

/// The symbols, once per page (hidden; rows refer to them).
pub fn sprite() -> Markup {
    const OUTLINE: &str = "M6 2.5h8l5 5V21.5H6z M14 2.5v5h5";
    let symbol = |kind: Kind, paths: &str| {
        PreEscaped(format!(
            "<symbol id=\"i-{}\" viewBox=\"0 0 24 24\" fill=\"none\" stroke=\"currentColor\" stroke-width=\"1.7\" stroke-linejoin=\"round\" stroke-linecap=\"round\"><path d=\"{paths}\"/></symbol>",
            kind.id()
        ))
    };
    html! {
        svg class="icon-sprite" aria-hidden="true" width="0" height="0" style="position:absolute" {
            (symbol(Kind::Folder, "M2.5 6.5h7l2 2h10v11h-19z"))
            (symbol(Kind::Image, "M3 4.5h18v15H3z M3 16.5l5-5 4 4 3-3 6 6 M9 9.5a1.5 1.5 0 1 0 .01 0"))
            (symbol(Kind::Audio, "M9 18V5.5l10-2v12.5 M9 18a3 3 0 1 1-.01 0 M19 16a3 3 0 1 1-.01 0"))
            (symbol(Kind::Video, "M3 6.5h12v11H3z M15 10.5l6-3.5v10l-6-3.5z"))
            (symbol(Kind::Pdf, &format!("{OUTLINE} M9 13h6 M9 17h4")))
            (symbol(Kind::Archive, "M4 3.5h16v17H4z M12 3.5v2 M12 7.5v2 M12 11.5v2 M10.5 15.5h3v3h-3z"))
            (symbol(Kind::Code, "M9 7.5l-5 4.5 5 4.5 M15 7.5l5 4.5-5 4.5"))
            (symbol(Kind::Text, &format!("{OUTLINE} M9 12h7 M9 15h7 M9 18h5")))
            (symbol(Kind::File, OUTLINE))
        }
    }
}

/// One icon, beside a name that says the rest (hidden from screen
/// readers, which read the name).
pub fn icon(kind: Kind) -> Markup {
    html! {
        svg class={ "icon i-" (kind.id()) } aria-hidden="true" {
            use href={ "#i-" (kind.id()) } {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_extension() {
        assert_eq!(Kind::of_name("IMG_0001.JPG"), Kind::Image);
        assert_eq!(Kind::of_name("song.flac"), Kind::Audio);
        assert_eq!(Kind::of_name("a.tar.gz"), Kind::Archive);
        assert_eq!(Kind::of_name("main.rs"), Kind::Code);
        assert_eq!(Kind::of_name("notes.md"), Kind::Text);
        assert_eq!(Kind::of_name(".bashrc"), Kind::File);
        assert_eq!(Kind::of_name("README"), Kind::File);
    }
}
