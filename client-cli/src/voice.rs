//! `--voice`: the headless voice client. Joins, enters voice, prints roster
//! and talking events, and leaves after `--duration`, on Ctrl-C, or (with a
//! WAV input and no duration) once the file has played plus a second of tail.

use std::time::Duration;

use client_core::audio::device::{Input, Output};
use client_core::rooms::{Applied, Rooms};
use client_core::voice::VoiceOptions;
use client_core::{Client, DisconnectReason, Event, Events};

use crate::Signals;
use crate::output::{Printer, exit_code};

/// How long to keep listening after a WAV input has been played.
const TAIL: Duration = Duration::from_secs(1);

/// What the voice client does.
#[derive(Debug)]
pub struct Voice {
    /// Devices and settings.
    pub options: VoiceOptions,
    /// The room to talk in (`None`: the server's choice, the first room we
    /// are in that has voice).
    pub room: Option<String>,
    /// Leave after this long in voice.
    pub duration: Option<Duration>,
    /// The input is a WAV file (leave once it has played, without a duration).
    pub wav_input: bool,
}

/// Runs the voice client until it is done; returns the exit code.
pub async fn run(client: Client, mut events: Events, printer: std::sync::Arc<Printer>, voice: Voice) -> u8 {
    let Voice { options, room, duration, wav_input } = voice;
    let mut signals = Signals::new();
    let mut deadline: Option<tokio::time::Instant> = None;
    let mut leaving = false;
    let mut voice_failed = false;
    let mut reconnected = false;
    let uses_device = matches!(options.input, Input::Device(_)) || matches!(options.output, Output::Device(_));
    let mut pending_options = Some(options);
    let mut rooms = Rooms::new(None);
    loop {
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        let event = tokio::select! {
            ev = events.recv() => ev,
            () = signals.next() => {
                if leaving {
                    return 130;
                }
                leaving = true;
                let _ = client.leave_voice().await;
                let _ = client.quit().await;
                continue;
            }
            () = sleep, if !leaving => {
                leaving = true;
                let _ = client.leave_voice().await;
                let _ = client.quit().await;
                continue;
            }
        };
        let Some(event) = event else { return 5 };
        // A message delivered again by a catch-up is shown once.
        if rooms.apply(&event) != Applied::Duplicate {
            printer.print(&event);
        }
        match &event {
            // Into voice once in the room (at once for the server's choice).
            Event::Connected { .. } if room.is_none() => {
                if let Some(opts) = pending_options.take() {
                    let _ = client.join_voice(opts).await;
                }
            }
            Event::RoomJoined { room: joined, .. }
                if room
                    .as_deref()
                    .is_some_and(|r| client_core::rooms::name_key(r) == client_core::rooms::name_key(joined)) =>
            {
                if let Some(opts) = pending_options.take() {
                    let _ = client.join_voice_in(opts, Some(joined.clone())).await;
                }
            }
            Event::JoinRefused { room: refused, detail, .. }
                if pending_options.is_some()
                    && room
                        .as_deref()
                        .is_some_and(|r| client_core::rooms::name_key(r) == client_core::rooms::name_key(refused)) =>
            {
                eprintln!(
                    "client-cli: cannot talk in #{}: {}",
                    client_core::display::escape_line(refused),
                    client_core::display::escape_line(detail)
                );
                voice_failed = true;
                leaving = true;
                let _ = client.quit().await;
            }
            Event::VoiceJoined { .. } => {
                // Counted from the first join: a rejoin after reconnecting
                // does not start it over.
                if let Some(d) = duration
                    && deadline.is_none()
                {
                    deadline = Some(tokio::time::Instant::now() + d);
                }
            }
            Event::Reconnecting { .. } => reconnected = true,
            Event::VoiceInputEnded if wav_input && duration.is_none() => {
                deadline = Some(tokio::time::Instant::now() + TAIL);
            }
            Event::VoiceError(_) => {
                if uses_device && !reconnected {
                    eprintln!("client-cli: on a machine without a sound card use --input/--output FILE.wav (or null)");
                }
                voice_failed = true;
                leaving = true;
                let _ = client.quit().await;
            }
            Event::Disconnected { reason, .. } => {
                if voice_failed && matches!(reason, DisconnectReason::Quit) {
                    // Voice that could not come back after a lost connection
                    // is a lost connection; voice that never started is local.
                    return if reconnected { 5 } else { 2 };
                }
                return exit_code(reason);
            }
            _ => {}
        }
    }
}
