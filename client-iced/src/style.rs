//! Colours, boxes and the modal overlay shared by the screens.

use iced::widget::{center, container, mouse_area, opaque, stack, text};
use iced::{Background, Border, Color, Element, Theme};

/// The theme: dark, like most chat clients.
pub fn theme() -> Theme {
    Theme::Dark
}

/// Secondary text.
pub fn muted(theme: &Theme) -> text::Style {
    text::Style { color: Some(theme.extended_palette().background.strong.text.scale_alpha(0.65)) }
}

/// Our own name in the log.
pub fn own(theme: &Theme) -> text::Style {
    text::Style { color: Some(theme.palette().primary) }
}

/// Other people's names in the log.
pub fn name(_theme: &Theme) -> text::Style {
    text::Style { color: Some(Color::from_rgb8(0x6f, 0xcf, 0x97)) }
}

/// Errors in the log.
pub fn error_text(theme: &Theme) -> text::Style {
    text::Style { color: Some(theme.palette().danger) }
}

/// Someone talking.
pub fn talking(theme: &Theme) -> text::Style {
    text::Style { color: Some(theme.extended_palette().success.strong.color) }
}

/// A raised panel.
pub fn card(theme: &Theme) -> container::Style {
    let p = theme.extended_palette();
    container::Style {
        background: Some(Background::Color(p.background.weak.color)),
        border: Border { radius: 8.0.into(), width: 1.0, color: p.background.strong.color },
        ..container::Style::default()
    }
}

/// A raised panel that refuses something: a red border.
pub fn error_card(theme: &Theme) -> container::Style {
    container::Style { border: Border { radius: 8.0.into(), width: 2.0, color: theme.palette().danger }, ..card(theme) }
}

/// A side panel.
pub fn panel(theme: &Theme) -> container::Style {
    let p = theme.extended_palette();
    container::Style {
        background: Some(Background::Color(p.background.weak.color.scale_alpha(0.6))),
        border: Border { radius: 6.0.into(), width: 0.0, color: Color::TRANSPARENT },
        ..container::Style::default()
    }
}

/// An error, in red.
pub fn error_box(theme: &Theme) -> container::Style {
    let danger = theme.palette().danger;
    container::Style {
        background: Some(Background::Color(danger.scale_alpha(0.18))),
        border: Border { radius: 6.0.into(), width: 1.0, color: danger },
        text_color: Some(Color::WHITE),
        ..container::Style::default()
    }
}

/// A warning banner (connection lost).
pub fn warning_box(theme: &Theme) -> container::Style {
    let warning = theme.extended_palette().warning.base.color;
    container::Style {
        background: Some(Background::Color(warning.scale_alpha(0.25))),
        border: Border { radius: 6.0.into(), width: 1.0, color: warning },
        text_color: Some(Color::WHITE),
        ..container::Style::default()
    }
}

/// A fingerprint or other exact text.
pub fn code_box(theme: &Theme) -> container::Style {
    let p = theme.extended_palette();
    container::Style {
        background: Some(Background::Color(p.background.base.color)),
        border: Border { radius: 4.0.into(), width: 1.0, color: p.background.strong.color },
        ..container::Style::default()
    }
}

/// `dialog` centred over a dimmed, inert `base`.
pub fn modal<'a, M: Clone + 'a>(base: Element<'a, M>, dialog: Element<'a, M>) -> Element<'a, M> {
    stack![
        base,
        opaque(mouse_area(center(opaque(dialog)).padding(16).style(|_theme: &Theme| container::Style {
            background: Some(Color { a: 0.6, ..Color::BLACK }.into()),
            ..container::Style::default()
        })))
    ]
    .into()
}
