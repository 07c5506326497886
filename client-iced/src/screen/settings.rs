//! The settings dialog: devices, noise suppression, voice activation or
//! push-to-talk, bitrate. Saved to the client config file.

use client_core::audio::pipeline::SendConfig;
use client_core::config::ClientConfig;
use client_core::voice::VoiceOptions;
use iced::widget::{button, column, container, pick_list, progress_bar, row, slider, space, text, toggler};
use iced::{Alignment, Element, Fill};

use crate::style;

/// The default device's name in the lists.
pub const DEFAULT_DEVICE: &str = "default";
/// Push-to-talk off: voice activation.
pub const VOICE_ACTIVATION: &str = "Off (voice activation)";
/// Keys offered for push-to-talk.
/// The choices of the push-to-talk list: voice activation, then the keys.
pub fn ptt_choices() -> Vec<String> {
    std::iter::once(VOICE_ACTIVATION)
        .chain(crate::push_to_talk::KEYS.iter().map(|(n, _)| *n))
        .map(str::to_owned)
        .collect()
}
/// Bitrates offered, bits per second.
pub const BITRATES: [u32; 6] = [16_000, 24_000, 32_000, 48_000, 64_000, 96_000];

/// Longest device name shown whole in the lists (characters); longer ones
/// lose their middle, which keeps both the card's name and the ALSA
/// device (`…(hw:CARD=PCH,DEV=0)`) readable within the dialog's width.
pub const DEVICE_LABEL: usize = 44;

/// A device in a list: the whole name is what is chosen and saved; it is
/// shown shortened to [`DEVICE_LABEL`] characters so it fits its box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceName(pub String);

impl std::fmt::Display for DeviceName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&elide(&self.0, DEVICE_LABEL))
    }
}

/// `s` in at most `max` characters: its start and end around an ellipsis.
pub fn elide(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max || max < 3 {
        return s.to_owned();
    }
    let tail = (max - 1) / 3;
    let head = max - 1 - tail;
    let start: String = s.chars().take(head).collect();
    let end: String = s.chars().skip(n - tail).collect();
    format!("{}…{}", start.trim_end(), end.trim_start())
}

/// Voice settings, as stored in `[client]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Voice {
    /// Input device name, `default`, or a WAV file.
    pub input: String,
    /// Output device name, `default`, or a WAV file.
    pub output: String,
    /// Echo cancellation (with a microphone and speakers).
    pub aec: bool,
    /// Noise suppression.
    pub denoise: bool,
    /// Voice activation threshold (speech probability).
    pub vad_threshold: f32,
    /// Opus bitrate.
    pub bitrate: u32,
    /// Push-to-talk key, if that mode is on.
    pub push_to_talk: Option<String>,
}

impl Voice {
    /// Reads the voice keys of a config (defaults for unset ones).
    pub fn from_config(c: &ClientConfig) -> Self {
        let d = SendConfig::default();
        Self {
            input: c.input.clone().unwrap_or_else(|| DEFAULT_DEVICE.into()),
            output: c.output.clone().unwrap_or_else(|| DEFAULT_DEVICE.into()),
            aec: c.aec.unwrap_or(d.aec),
            denoise: c.denoise.unwrap_or(d.denoise),
            vad_threshold: c.vad_threshold.unwrap_or(d.vad_threshold).clamp(0.0, 1.0),
            bitrate: c.bitrate.and_then(|b| u32::try_from(b).ok()).unwrap_or(32_000).clamp(6_000, 128_000),
            push_to_talk: c.push_to_talk.clone().filter(|k| crate::push_to_talk::parse_key(k).is_some()),
        }
    }

    /// Writes them into a config.
    pub fn store(&self, c: &mut ClientConfig) {
        c.input = Some(self.input.clone());
        c.output = Some(self.output.clone());
        c.aec = Some(self.aec);
        c.denoise = Some(self.denoise);
        c.vad_threshold = Some(self.vad_threshold);
        c.bitrate = i32::try_from(self.bitrate).ok();
        c.push_to_talk = self.push_to_talk.clone();
    }

    /// What a voice join uses (controls and push-to-talk are added by the caller).
    pub fn options(&self) -> VoiceOptions {
        let mut c = ClientConfig::default();
        self.store(&mut c);
        c.voice_options()
    }
}

/// The open dialog.
#[derive(Debug, Clone)]
pub struct Dialog {
    /// Being edited.
    pub voice: Voice,
    /// Input devices found (`None` while listing).
    pub inputs: Option<Vec<String>>,
    /// Output devices found.
    pub outputs: Option<Vec<String>>,
    /// Listing or saving failed.
    pub error: Option<String>,
    /// The live speech probability while in voice (for the threshold).
    pub speech: Option<f32>,
}

/// What the user did in the dialog.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Devices listed (inputs, outputs) or why not.
    Devices(Result<(Vec<String>, Vec<String>), String>),
    /// Input chosen.
    Input(String),
    /// Output chosen.
    Output(String),
    /// Echo cancellation toggled.
    EchoCancellation(bool),
    /// Noise suppression toggled.
    Denoise(bool),
    /// Threshold moved.
    Threshold(f32),
    /// Bitrate chosen.
    Bitrate(u32),
    /// Push-to-talk key chosen.
    PushToTalk(String),
    /// Save and close.
    Save,
    /// Close without saving (or Escape).
    Cancel,
}

/// What the application should do after a [`Message`].
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Nothing more.
    None,
    /// Save these and close.
    Save(Voice),
    /// Close.
    Close,
}

/// Lists devices (blocking: call off the UI thread).
pub fn list_devices() -> Result<(Vec<String>, Vec<String>), String> {
    client_core::audio::device::list_devices().map_err(|e| e.to_string())
}

impl Dialog {
    /// Opens with the current settings.
    pub fn new(voice: Voice) -> Self {
        Self { voice, inputs: None, outputs: None, error: None, speech: None }
    }

    /// Applies a message.
    pub fn update(&mut self, message: Message) -> Action {
        match message {
            Message::Devices(Ok((i, o))) => {
                self.inputs = Some(i);
                self.outputs = Some(o);
            }
            Message::Devices(Err(e)) => {
                self.inputs = Some(Vec::new());
                self.outputs = Some(Vec::new());
                self.error = Some(format!("Cannot list audio devices: {e}"));
            }
            Message::Input(d) => self.voice.input = d,
            Message::Output(d) => self.voice.output = d,
            Message::EchoCancellation(b) => self.voice.aec = b,
            Message::Denoise(b) => self.voice.denoise = b,
            Message::Threshold(t) => self.voice.vad_threshold = t.clamp(0.0, 1.0),
            Message::Bitrate(b) => self.voice.bitrate = b,
            Message::PushToTalk(k) => self.voice.push_to_talk = (k != VOICE_ACTIVATION).then_some(k),
            Message::Save => return Action::Save(self.voice.clone()),
            Message::Cancel => return Action::Close,
        }
        Action::None
    }

    /// The dialog.
    pub fn view(&self) -> Element<'_, Message> {
        let choices = |found: &Option<Vec<String>>, current: &str| -> Vec<DeviceName> {
            let mut v = vec![DeviceName(DEFAULT_DEVICE.to_owned())];
            v.extend(found.iter().flatten().cloned().map(DeviceName));
            if !v.iter().any(|d| d.0 == current) {
                v.push(DeviceName(current.to_owned()));
            }
            v
        };
        let inputs = choices(&self.inputs, &self.voice.input);
        let outputs = choices(&self.outputs, &self.voice.output);
        let listing = if self.inputs.is_none() { " (listing devices…)" } else { "" };
        let ptt = self.voice.push_to_talk.clone().unwrap_or_else(|| VOICE_ACTIVATION.to_owned());
        let ptt_keys = ptt_choices();
        let mut threshold = column![
            row![
                text("Voice activation threshold"),
                space::horizontal(),
                text(format!("{:.2}", self.voice.vad_threshold)),
            ],
            slider(0.0..=1.0, self.voice.vad_threshold, Message::Threshold).step(0.05),
        ]
        .spacing(4);
        if let Some(p) = self.speech {
            threshold =
                threshold.push(row![text("speech now").size(12), progress_bar(0.0..=1.0, p).girth(6)].spacing(8));
        }
        let mut body = column![
            text("Settings").size(22),
            text(format!("Microphone{listing}")),
            pick_list(inputs, Some(DeviceName(self.voice.input.clone())), |d| Message::Input(d.0)).width(Fill),
            text("Speakers"),
            pick_list(outputs, Some(DeviceName(self.voice.output.clone())), |d| Message::Output(d.0)).width(Fill),
            toggler(self.voice.aec).label("Echo cancellation").on_toggle(Message::EchoCancellation),
            toggler(self.voice.denoise).label("Noise suppression").on_toggle(Message::Denoise),
            text("Push to talk"),
            pick_list(ptt_keys, Some(ptt), Message::PushToTalk).width(Fill),
            threshold,
            row![
                text("Bitrate (clean link)"),
                space::horizontal(),
                pick_list(BITRATES, Some(self.voice.bitrate), Message::Bitrate)
            ]
            .align_y(Alignment::Center),
            text("Changes apply the next time you connect voice.").size(12).style(style::muted),
        ]
        .spacing(10);
        if let Some(e) = &self.error {
            body = body.push(container(text(e.clone())).padding(8).width(Fill).style(style::error_box));
        }
        body = body.push(
            row![
                space::horizontal(),
                button("Cancel").on_press(Message::Cancel).style(button::secondary),
                button("Save").on_press(Message::Save),
            ]
            .spacing(10),
        );
        container(body).padding(20).max_width(480).style(style::card).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_device_names_are_shortened_for_show_only() {
        let long = "HDA Intel PCH, ALC892 Analog with a very long vendor description (hw:CARD=PCH,DEV=0)";
        let shown = DeviceName(long.to_owned()).to_string();
        assert!(shown.chars().count() <= DEVICE_LABEL, "{shown}");
        assert!(shown.starts_with("HDA Intel PCH") && shown.ends_with("DEV=0)") && shown.contains('…'), "{shown}");
        assert_eq!(DeviceName("default".into()).to_string(), "default");
        // What is chosen is the whole name.
        let mut d = Dialog::new(Voice::from_config(&ClientConfig::default()));
        d.update(Message::Input(DeviceName(long.to_owned()).0));
        assert_eq!(d.voice.input, long);
    }

    #[test]
    fn round_trips_through_the_config_and_sanitises() {
        let mut c =
            ClientConfig { vad_threshold: Some(7.0), push_to_talk: Some("Meta".into()), ..ClientConfig::default() };
        let v = Voice::from_config(&c);
        assert_eq!((v.vad_threshold, v.push_to_talk.as_deref(), v.input.as_str()), (1.0, None, DEFAULT_DEVICE));
        let mut d = Dialog::new(v);
        d.update(Message::PushToTalk("F2".into()));
        d.update(Message::Bitrate(48_000));
        assert!(d.voice.aec, "echo cancellation is on by default");
        d.update(Message::EchoCancellation(false));
        let Action::Save(v) = d.update(Message::Save) else { panic!("saves") };
        v.store(&mut c);
        assert_eq!(Voice::from_config(&c), v);
        assert_eq!(c.aec, Some(false), "the switch is saved as `aec`");
        assert_eq!(v.options().send.bitrate, 48_000);
        assert!(!v.options().send.aec);
        d.update(Message::PushToTalk(VOICE_ACTIVATION.into()));
        assert_eq!(d.voice.push_to_talk, None);
    }
}
