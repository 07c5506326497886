//! Audio endpoints behind one interface: a sound-card device (cpal) or a
//! WAV file paced in real time like a device. Either way the pipeline reads
//! captured samples from, and writes playback samples into, a lock-free
//! ring buffer; device callbacks only copy, never block or allocate.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};

use super::AudioError;

/// Where captured audio comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A capture device (`None`: the default one).
    Device(Option<String>),
    /// A WAV file, played in real time.
    Wav(PathBuf),
    /// No microphone: listen only (keepalives keep the stream alive).
    Null,
}

/// Where the room's audio goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// A playback device (`None`: the default one).
    Device(Option<String>),
    /// A WAV file recording the room on a continuous timeline.
    Wav(PathBuf),
    /// Nowhere (listen-only clients in tests).
    Null,
}

/// What a name given for an input or an output means, read one way for both.
enum Endpoint {
    Wav(PathBuf),
    Null,
    Device(Option<String>),
}

impl Endpoint {
    /// `FILE.wav` means a file, `null` nowhere, `default` the default
    /// device, anything else a device name.
    fn parse(s: &str) -> Self {
        if s.to_ascii_lowercase().ends_with(".wav") {
            Self::Wav(PathBuf::from(s))
        } else if s == "null" {
            Self::Null
        } else if s == "default" {
            Self::Device(None)
        } else {
            Self::Device(Some(s.to_owned()))
        }
    }
}

impl Input {
    /// `FILE.wav` means a file, `null` nothing (silence), `default` the
    /// default device, anything else a device name.
    pub fn parse(s: &str) -> Self {
        match Endpoint::parse(s) {
            Endpoint::Wav(path) => Self::Wav(path),
            Endpoint::Null => Self::Null,
            Endpoint::Device(name) => Self::Device(name),
        }
    }
}

impl Output {
    /// `FILE.wav` means a file, `null` nowhere, `default` the default
    /// device, anything else a device name.
    pub fn parse(s: &str) -> Self {
        match Endpoint::parse(s) {
            Endpoint::Wav(path) => Self::Wav(path),
            Endpoint::Null => Self::Null,
            Endpoint::Device(name) => Self::Device(name),
        }
    }
}

/// Keeps an endpoint running until dropped.
pub(crate) struct Guard {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An open capture endpoint.
pub struct Capture {
    /// Its sample rate.
    pub rate: u32,
    /// Its channel count (interleaved).
    pub channels: u16,
    /// Captured samples.
    pub ring: rtrb::Consumer<f32>,
    /// Set when a file has been read to the end.
    pub ended: Arc<AtomicBool>,
    _guard: Guard,
}

/// An open playback endpoint.
pub struct Playback {
    /// Its sample rate.
    pub rate: u32,
    /// Its channel count (interleaved).
    pub channels: u16,
    /// Samples to play.
    pub ring: rtrb::Producer<f32>,
    _guard: Guard,
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture").field("rate", &self.rate).field("channels", &self.channels).finish()
    }
}

impl std::fmt::Debug for Playback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Playback").field("rate", &self.rate).field("channels", &self.channels).finish()
    }
}

/// alsa-lib prints its own diagnostics on stderr (`ALSA lib pcm.c:…`,
/// eight lines on a machine without a sound card) before cpal returns the
/// error we word ourselves. This sends them, for the calling thread, to a
/// buffer that is dropped instead. ALSA reports through the handler of the
/// thread that made the failing call, so every function here that talks to
/// the sound system calls this first (cheap: it replaces the buffer).
///
/// Why this way: `snd_lib_error_set_handler` wants a C-variadic function,
/// which stable Rust cannot define; the `alsa` crate (already in the tree
/// through cpal) wraps the thread-local, `va_list` variant safely.
fn quiet_alsa() {
    #[cfg(target_os = "linux")]
    {
        let _ = alsa::Output::local_error_handler();
    }
}

/// Opens `input`, falling back to no microphone ([`Input::Null`]) when it
/// is the default device and that cannot be opened (no sound card): the
/// second value then says what happened, in one line for the user.
///
/// # Errors
///
/// As [`open_capture`], for a named device or a file.
pub fn open_capture_or_fallback(input: &Input) -> Result<(Capture, Option<String>), AudioError> {
    match (input, open_capture(input)) {
        (Input::Device(None), Err(e)) => {
            Ok((open_capture(&Input::Null)?, Some(format!("no microphone ({e}); in voice without one (input null)"))))
        }
        (_, opened) => opened.map(|c| (c, None)),
    }
}

/// Opens `output`, falling back to nowhere ([`Output::Null`]) when it is
/// the default device and that cannot be opened (no sound card): the second
/// value then says what happened, in one line for the user.
///
/// # Errors
///
/// As [`open_playback`], for a named device or a file.
pub fn open_playback_or_fallback(output: &Output) -> Result<(Playback, Option<String>), AudioError> {
    match (output, open_playback(output)) {
        (Output::Device(None), Err(e)) => Ok((
            open_playback(&Output::Null)?,
            Some(format!("no speakers ({e}); the room is not played (output null)")),
        )),
        (_, opened) => opened.map(|p| (p, None)),
    }
}

/// Opens a capture endpoint.
///
/// # Errors
///
/// [`AudioError`] naming the device or file and what failed.
pub fn open_capture(input: &Input) -> Result<Capture, AudioError> {
    match input {
        Input::Wav(path) => super::wav::capture(path),
        Input::Device(name) => cpal_capture(name.as_deref()),
        Input::Null => {
            let (_prod, cons) = rtrb::RingBuffer::<f32>::new(1);
            let stop = Arc::new(AtomicBool::new(false));
            Ok(Capture {
                rate: super::RATE,
                channels: 1,
                ring: cons,
                ended: Arc::new(AtomicBool::new(false)),
                _guard: Guard { stop, thread: None },
            })
        }
    }
}

/// Opens a playback endpoint.
///
/// # Errors
///
/// [`AudioError`] naming the device or file and what failed.
pub fn open_playback(output: &Output) -> Result<Playback, AudioError> {
    match output {
        Output::Wav(path) => super::wav::playback(Some(path)),
        Output::Null => super::wav::playback(None),
        Output::Device(name) => cpal_playback(name.as_deref()),
    }
}

impl Capture {
    pub(crate) fn new(
        rate: u32,
        channels: u16,
        ring: rtrb::Consumer<f32>,
        ended: Arc<AtomicBool>,
        stop: Arc<AtomicBool>,
        thread: JoinHandle<()>,
    ) -> Self {
        Self { rate, channels, ring, ended, _guard: Guard { stop, thread: Some(thread) } }
    }
}

impl Playback {
    pub(crate) fn new(
        rate: u32,
        channels: u16,
        ring: rtrb::Producer<f32>,
        stop: Arc<AtomicBool>,
        thread: JoinHandle<()>,
    ) -> Self {
        Self { rate, channels, ring, _guard: Guard { stop, thread: Some(thread) } }
    }

    /// A playback whose thread is owned elsewhere: dropping it only raises `stop`.
    pub(crate) fn detached(rate: u32, channels: u16, ring: rtrb::Producer<f32>, stop: Arc<AtomicBool>) -> Self {
        Self { rate, channels, ring, _guard: Guard { stop, thread: None } }
    }
}

/// Names of the capture and playback devices of the default host.
///
/// # Errors
///
/// [`AudioError::Device`] when the audio system cannot be queried.
pub fn list_devices() -> Result<(Vec<String>, Vec<String>), AudioError> {
    quiet_alsa();
    let host = cpal::default_host();
    let names = |devs: Result<Vec<cpal::Device>, cpal::Error>| -> Result<Vec<String>, AudioError> {
        Ok(devs
            .map_err(|e| AudioError::Device(format!("cannot list audio devices: {e}")))?
            .iter()
            .filter_map(|d| d.description().ok().map(|d| d.name().to_owned()))
            .collect())
    };
    let inputs = names(host.input_devices().map(Iterator::collect))?;
    let outputs = names(host.output_devices().map(Iterator::collect))?;
    Ok((inputs, outputs))
}

fn find_device(input: bool, name: Option<&str>) -> Result<cpal::Device, AudioError> {
    let host = cpal::default_host();
    let what = if input { "input" } else { "output" };
    match name {
        None => if input { host.default_input_device() } else { host.default_output_device() }
            .ok_or_else(|| AudioError::Device(format!("no default audio {what} device"))),
        Some(name) => {
            let devices: Vec<cpal::Device> = if input {
                host.input_devices().map(Iterator::collect)
            } else {
                host.output_devices().map(Iterator::collect)
            }
            .map_err(|e| AudioError::Device(format!("cannot list audio devices: {e}")))?;
            devices.into_iter().find(|d| d.description().is_ok_and(|desc| desc.name() == name)).ok_or_else(|| {
                AudioError::Device(format!(
                    "no audio {what} device named {name:?} (list the devices to see their names)"
                ))
            })
        }
    }
}

/// Runs `open` on a dedicated thread that owns the cpal stream (streams
/// need not be `Send`) until the guard stops it.
fn run_stream<F>(open: F) -> Result<(u32, u16, Arc<AtomicBool>, JoinHandle<()>), AudioError>
where
    F: FnOnce() -> Result<(cpal::Stream, u32, u16), AudioError> + Send + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel();
    let stop2 = stop.clone();
    let thread = std::thread::Builder::new()
        .name("audio-device".into())
        .spawn(move || {
            quiet_alsa();
            let stream = match open() {
                Ok((stream, rate, ch)) => {
                    let _ = tx.send(Ok((rate, ch)));
                    stream
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            while !stop2.load(Ordering::SeqCst) {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            drop(stream);
        })
        .map_err(|e| AudioError::Device(format!("cannot start the audio thread: {e}")))?;
    match rx.recv() {
        Ok(Ok((rate, ch))) => Ok((rate, ch, stop, thread)),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => Err(AudioError::Device("the audio thread died".into())),
    }
}

fn cpal_capture(name: Option<&str>) -> Result<Capture, AudioError> {
    let name = name.map(str::to_owned);
    let (prod, cons) = rtrb::RingBuffer::<f32>::new(48_000 * 2);
    let open = move || {
        let device = find_device(true, name.as_deref())?;
        let config = device
            .default_input_config()
            .map_err(|e| AudioError::Device(format!("cannot open the audio input: {e}")))?;
        let (rate, channels) = (config.sample_rate(), config.channels());
        let err = |e| AudioError::Device(format!("cannot open the audio input: {e}"));
        let mut prod = prod;
        let stream = match config.sample_format() {
            cpal::SampleFormat::F32 => device.build_input_stream(
                config.into(),
                move |data: &[f32], _: &_| push(&mut prod, data.iter().copied()),
                |_| {},
                None,
            ),
            cpal::SampleFormat::I16 => device.build_input_stream(
                config.into(),
                move |data: &[i16], _: &_| push(&mut prod, data.iter().map(|s| f32::from(*s) / 32768.0)),
                |_| {},
                None,
            ),
            other => return Err(AudioError::Device(format!("unsupported input sample format {other}"))),
        }
        .map_err(err)?;
        stream.play().map_err(|e| AudioError::Device(format!("cannot start the audio input: {e}")))?;
        Ok((stream, rate, channels))
    };
    let (rate, channels, stop, thread) = run_stream(open)?;
    Ok(Capture::new(rate, channels, cons, Arc::new(AtomicBool::new(false)), stop, thread))
}

/// Real-time safe: copies what fits, drops the rest.
fn push(prod: &mut rtrb::Producer<f32>, samples: impl Iterator<Item = f32>) {
    for s in samples {
        if prod.push(s).is_err() {
            break;
        }
    }
}

fn cpal_playback(name: Option<&str>) -> Result<Playback, AudioError> {
    let name = name.map(str::to_owned);
    let (prod, cons) = rtrb::RingBuffer::<f32>::new(48_000 * 2);
    let open = move || {
        let device = find_device(false, name.as_deref())?;
        let config = device
            .default_output_config()
            .map_err(|e| AudioError::Device(format!("cannot open the audio output: {e}")))?;
        let (rate, channels) = (config.sample_rate(), config.channels());
        let err = |e| AudioError::Device(format!("cannot open the audio output: {e}"));
        let mut cons = cons;
        let stream = match config.sample_format() {
            cpal::SampleFormat::F32 => device.build_output_stream(
                config.into(),
                move |data: &mut [f32], _: &_| {
                    for s in data.iter_mut() {
                        *s = cons.pop().unwrap_or(0.0);
                    }
                },
                |_| {},
                None,
            ),
            cpal::SampleFormat::I16 => device.build_output_stream(
                config.into(),
                move |data: &mut [i16], _: &_| {
                    for s in data.iter_mut() {
                        *s = (cons.pop().unwrap_or(0.0).clamp(-1.0, 1.0) * 32767.0) as i16;
                    }
                },
                |_| {},
                None,
            ),
            other => return Err(AudioError::Device(format!("unsupported output sample format {other}"))),
        }
        .map_err(err)?;
        stream.play().map_err(|e| AudioError::Device(format!("cannot start the audio output: {e}")))?;
        Ok((stream, rate, channels))
    };
    let (rate, channels, stop, thread) = run_stream(open)?;
    Ok(Playback::new(rate, channels, prod, stop, thread))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_mean_the_same_for_inputs_and_outputs() {
        assert_eq!(Input::parse("speech.WAV"), Input::Wav(PathBuf::from("speech.WAV")));
        assert_eq!(Output::parse("room.wav"), Output::Wav(PathBuf::from("room.wav")));
        assert_eq!(Input::parse("null"), Input::Null);
        assert_eq!(Output::parse("null"), Output::Null);
        assert_eq!(Input::parse("default"), Input::Device(None));
        assert_eq!(Output::parse("default"), Output::Device(None));
        assert_eq!(Input::parse("USB Mic"), Input::Device(Some("USB Mic".into())));
        assert_eq!(Output::parse("HDMI"), Output::Device(Some("HDMI".into())));
    }
}
