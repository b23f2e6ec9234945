//! A cpal stream on a thread of its own: cpal streams may not leave the
//! thread that made them, so each device gets one that starts the stream,
//! reports whether that worked, and holds it until dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::MediaError;

/// Owns a device's thread; dropping it stops the stream and frees the device.
#[derive(Debug)]
pub(crate) struct StreamThread {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// The device's name, as the stream reported it.
    pub(crate) name: String,
}

impl StreamThread {
    /// Runs `start` on a new thread named `thread_name`; returns once the
    /// stream is playing (or with the reason it could not start).
    pub(crate) fn spawn(
        thread_name: &str,
        kind: &'static str,
        start: impl FnOnce() -> Result<(cpal::Stream, String), MediaError> + Send + 'static,
    ) -> Result<Self, MediaError> {
        let (ready_tx, ready_rx) = sync_channel(1);
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name(thread_name.into())
            .spawn(move || {
                let stream = match start() {
                    Ok((stream, name)) => {
                        let _ = ready_tx.send(Ok(name));
                        stream
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                while !stopped.load(Ordering::Relaxed) {
                    std::thread::park_timeout(Duration::from_millis(100));
                }
                drop(stream);
            })
            .map_err(|e| MediaError::DeviceBusy {
                kind,
                detail: e.to_string(),
            })?;
        let name = ready_rx.recv().map_err(|_| MediaError::DeviceLost {
            kind,
            detail: "the device thread died".into(),
        })??;
        Ok(Self {
            stop,
            thread: Some(thread),
            name,
        })
    }
}

impl Drop for StreamThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}
