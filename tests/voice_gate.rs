//! The voice activity gate does not clip the start of a phrase: phrases
//! that open with an unvoiced consonant, in three voices, through the send
//! pipeline a microphone feeds (default settings: noise suppression and
//! voice activation on), the simulated network and the listener's jitter
//! buffer and decoder ([`socket_chatroom_tests::sim`]: deterministic,
//! faster than real time). Every frame of a phrase arrives within 10 dB
//! of its source level, and the silence between phrases sends nothing.

use client_core::audio::FRAME;
use client_core::audio::gate::{HANGOVER, ONSET_HANGOVER};
use socket_chatroom_tests::audio::{Voice, phrases};
use socket_chatroom_tests::sim::{self, SimOptions};

fn level_db(x: &[f32]) -> f64 {
    let p = x.iter().map(|s| f64::from(*s) * f64::from(*s)).sum::<f64>() / x.len().max(1) as f64;
    10.0 * (p + 1e-12).log10()
}

/// Where `phrase` lies in `recording` after `from` (up to 300 ms later),
/// by correlation: every 8th lag on every 8th sample, then refined.
fn find(phrase: &[f32], recording: &[f32], from: usize) -> usize {
    let score = |lag: usize, step: usize| -> f64 {
        let r = &recording[(from + lag).min(recording.len())..];
        phrase.iter().step_by(step).zip(r.iter().step_by(step)).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum()
    };
    let coarse = (0..FRAME * 15).step_by(8).max_by(|a, b| score(*a, 8).total_cmp(&score(*b, 8))).unwrap_or(0);
    (coarse.saturating_sub(8)..coarse + 8).max_by(|a, b| score(*a, 1).total_cmp(&score(*b, 1))).unwrap_or(coarse)
}

#[test]
fn phrase_onsets_are_not_clipped_and_pauses_send_nothing() {
    let voices =
        [Voice::default(), Voice::second(), Voice { pitch_hz: 165.0, formants_hz: (620.0, 2000.0), seed: 0x2F6B_A1C3 }];
    for (v, voice) in voices.into_iter().enumerate() {
        let (source, spans) = phrases(4, voice, 1.2, 0.9);
        let run = sim::run(&source, &SimOptions::default()).expect("simulated run");
        let mut clipped = Vec::new();
        let mut speech_frames = 0;
        for (p, span) in spans.iter().enumerate() {
            let phrase = &source[span.clone()];
            let at = span.start + find(phrase, &run.recording, span.start);
            for (f, frame) in phrase.chunks_exact(FRAME).enumerate() {
                let src = level_db(frame);
                if src < -40.0 {
                    continue;
                }
                speech_frames += 1;
                let got = level_db(&run.recording[at + f * FRAME..(at + (f + 1) * FRAME).min(run.recording.len())]);
                if got < src - 10.0 {
                    clipped.push(format!("voice {v} phrase {p} frame {f}: source {src:.1} dBFS, received {got:.1}"));
                }
            }
            // The pause after the phrase: once the hangover is over (the
            // noise suppressor's speech probability may hold on for a few
            // frames past the end), no audio frame is sent.
            let end = span.end / FRAME + (HANGOVER + ONSET_HANGOVER) as usize + 5;
            let next = spans.get(p + 1).map_or(run.sent_after_frame.len(), |s| s.start / FRAME - 1);
            let sent: usize = run.sent_after_frame[end.min(next)..next].iter().sum();
            assert_eq!(sent, 0, "voice {v}: {sent} audio packets in the pause after phrase {p}");
        }
        eprintln!(
            "voice {v}: {speech_frames} speech frames, {} more than 10 dB down; {} packets for {} frames",
            clipped.len(),
            run.sent,
            run.sent_after_frame.len()
        );
        assert!(speech_frames > 100, "voice {v}: the phrases hold too little speech ({speech_frames} frames)");
        assert!(clipped.is_empty(), "clipped:\n{}", clipped.join("\n"));
        // The gate did close: far fewer packets than frames.
        assert!(run.sent < run.sent_after_frame.len() as u64 * 3 / 4, "voice {v}: the gate never closed");
    }
}
