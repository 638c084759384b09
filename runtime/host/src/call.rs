//! One call: a fresh store and instance, limits, and a classified outcome.

use std::time::{Duration, Instant};

use ferry_wit::Value;
use wasmtime::component::Val;
use wasmtime::{Store, Trap, UpdateDeadline, WasmBacktrace};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::capabilities::blobs::NewBlob;
use crate::capabilities::log::LogEvent;
use crate::capabilities::{self, CallOptions, Prepare, TaskState};
use crate::function::{Export, Function};
use crate::stdio::{Capture, Captured};
use crate::{Error, Host, Limits};

impl WasiView for TaskState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// wasmtime's hostcall fuel when a store sets none.
const DEFAULT_HOSTCALL_FUEL: usize = 128 << 20;

/// How wasmtime says a lift ran out of hostcall fuel (its error type is
/// private).
const HOSTCALL_FUEL_EXHAUSTED: &str = "fuel allocated for hostcalls has been exhausted";

/// A result as lifted: bytes by the typed path, a `Val` by the dynamic one.
enum Lifted {
    Bytes(Vec<u8>),
    Val(Option<Val>),
}

/// What a successful call produced.
#[derive(Debug)]
pub struct Outcome {
    /// The returned value; `None` for a function without a result.
    pub result: Option<Value>,
    pub stdout: Captured,
    pub stderr: Captured,
    pub logs: Vec<LogEvent>,
    /// Log events past [`Limits::log_events`], counted but not kept.
    pub logs_dropped: u64,
    /// Highest linear memory the instance held, in bytes.
    pub peak_memory: u64,
    /// Instantiation plus the call.
    pub elapsed: Duration,
    /// Blobs the call wrote and finished (`ferry:host/blobs.finish`).
    pub blobs: Vec<NewBlob>,
}

/// What a call printed and logged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Output {
    pub stdout: Captured,
    pub stderr: Captured,
    pub logs: Vec<LogEvent>,
    /// Log events past [`Limits::log_events`], counted but not kept.
    pub logs_dropped: u64,
}

/// A call that failed, with what it printed and logged before it did: a
/// user needs that most when a remote task misbehaves.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct Failed {
    pub error: Error,
    pub output: Output,
}

impl From<Error> for Failed {
    fn from(error: Error) -> Failed {
        Failed {
            error,
            output: Output::default(),
        }
    }
}

impl Host {
    /// Calls `export` of `function` in a fresh instance under `limits`.
    ///
    /// Whatever the guest does (trap, loop, exhaust memory) comes back as an
    /// [`Error`]; the host and other calls are unaffected.
    pub async fn call(
        &self,
        function: &Function,
        export: &Export,
        args: &[Value],
        limits: &Limits,
        options: &CallOptions,
    ) -> Result<Outcome, Error> {
        self.call_keeping_output(function, export, args, limits, options)
            .await
            .map_err(|f| f.error)
    }

    /// [`Host::call`], keeping what a failed call printed and logged.
    pub async fn call_keeping_output(
        &self,
        function: &Function,
        export: &Export,
        args: &[Value],
        limits: &Limits,
        options: &CallOptions,
    ) -> Result<Outcome, Failed> {
        export.check_supported()?;
        if limits.fuel.is_some() && !self.config().fuel {
            return Err(Error::InvalidLimits(
                "a fuel limit needs a host built with fuel metering (HostConfig::fuel)".into(),
            )
            .into());
        }
        let started = Instant::now();
        let deadline = started + limits.timeout;
        let stdout = Capture::new(limits.stdio);
        let stderr = Capture::new(limits.stdio);
        let mut wasi = WasiCtx::builder();
        wasi.stdout(stdout.clone()).stderr(stderr.clone());
        // No network: sockets cannot even be made, nor names looked up.
        wasi.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        // Dropped after the store, so that what it holds (the scratch
        // directory) outlives every handle on it.
        let mut keep: Vec<Box<dyn Send>> = Vec::new();
        let function_id = function.id().to_hex();
        let state = capabilities::prepare(
            options,
            &mut Prepare {
                host: self,
                function: &function_id,
                limits,
                deadline,
                wasi: &mut wasi,
                keep: &mut keep,
            },
        )?;
        let mut store = Store::new(self.engine(), state);
        store.limiter(|s| &mut s.limiter);
        if let Some(fuel) = limits.fuel {
            store
                .set_fuel(fuel)
                .map_err(|e| Error::Internal(format!("setting fuel: {e}")))?;
        } else if self.config().fuel {
            store
                .set_fuel(u64::MAX)
                .map_err(|e| Error::Internal(format!("setting fuel: {e}")))?;
        }
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |mut cx| {
            if Instant::now() >= deadline {
                cx.data_mut().timed_out = true;
                Ok(UpdateDeadline::Interrupt)
            } else {
                // Yield each tick so that one busy guest cannot starve the
                // others sharing this executor thread.
                Ok(UpdateDeadline::Yield(1))
            }
        });

        // A `list<u8>` result of a common signature is lifted as bytes;
        // others lift a `Val` per element, charged 32 bytes of hostcall
        // fuel each: enough fuel for any result up to the output limit.
        let typed = crate::typed::params(export.params(), export.result_type(), args);
        let fuel = if typed.is_some() {
            // One copy out of guest memory, which the memory limit bounds.
            usize::MAX
        } else {
            usize::try_from(limits.output)
                .unwrap_or(usize::MAX)
                .saturating_mul(size_of::<Val>())
                .max(DEFAULT_HOSTCALL_FUEL)
        };
        store.set_hostcall_fuel(fuel);
        let run = async {
            let instance = function.pre.instantiate_async(&mut store).await?;
            let func = instance
                .get_func(&mut store, export.index())
                .ok_or_else(|| {
                    wasmtime::format_err!("export `{}` vanished from the instance", export.name())
                })?;
            if let Some(params) = typed {
                let bytes = crate::typed::call(&mut store, func, params).await?;
                return wasmtime::Result::Ok(Lifted::Bytes(bytes));
            }
            let mut results = vec![Val::Bool(false); usize::from(export.result_type().is_some())];
            let args: Vec<Val> = args.iter().map(crate::value::to_val).collect();
            func.call_async(&mut store, &args, &mut results).await?;
            wasmtime::Result::Ok(Lifted::Val(results.pop()))
        };
        // The epoch callback enforces the limit inside wasm; this backstop
        // covers time spent in host calls.
        let outcome =
            match tokio::time::timeout(limits.timeout + Duration::from_millis(250), run).await {
                Ok(r) => r,
                Err(_) => {
                    store.data_mut().timed_out = true;
                    Err(wasmtime::format_err!("timed out in a host call"))
                }
            };
        let state = store.data_mut();
        let stderr_text = stderr.take();
        let too_large = |size: u64| Error::OutputTooLarge {
            size,
            limit: limits.output,
        };
        let result = outcome
            .map_err(|err| {
                if format!("{err:#}").contains(HOSTCALL_FUEL_EXHAUSTED) {
                    // The dynamic lift ran out of the fuel the output limit
                    // gives it: the result is past the limit.
                    too_large(u64::MAX)
                } else {
                    classify(err, state, limits, &stderr_text)
                }
            })
            .and_then(|lifted| match lifted {
                Lifted::Bytes(b) if b.len() as u64 > limits.output => {
                    Err(too_large(b.len() as u64))
                }
                Lifted::Bytes(b) => Ok(Some(Value::Bytes(b))),
                Lifted::Val(None) => Ok(None),
                Lifted::Val(Some(v)) => {
                    let size = crate::value::payload_size(&v);
                    if size > limits.output {
                        return Err(too_large(size));
                    }
                    let ty = export.result_type().ok_or_else(|| {
                        Error::Internal("a result from a function declared without one".into())
                    })?;
                    crate::value::from_val(v, ty).map(Some).ok_or_else(|| {
                        Error::Internal(
                            "the function returned a kind of value ferry cannot carry".into(),
                        )
                    })
                }
            });
        let output = Output {
            stdout: stdout.take(),
            stderr: stderr_text,
            logs: std::mem::take(&mut state.log.events),
            logs_dropped: state.log.dropped,
        };
        let result = match result {
            Ok(r) => r,
            Err(error) => return Err(Failed { error, output }),
        };
        Ok(Outcome {
            result,
            stdout: output.stdout,
            stderr: output.stderr,
            logs: output.logs,
            logs_dropped: output.logs_dropped,
            peak_memory: state.limiter.peak,
            elapsed: started.elapsed(),
            blobs: std::mem::take(&mut state.blobs.created),
        })
    }
}

fn classify(err: wasmtime::Error, state: &TaskState, limits: &Limits, stderr: &Captured) -> Error {
    if capabilities::timed_out(state) {
        return Error::Timeout {
            limit: limits.timeout,
        };
    }
    if let Some(requested) = state.limiter.refused {
        return Error::OutOfMemory {
            limit: limits.memory,
            requested,
        };
    }
    let backtrace = err.downcast_ref::<WasmBacktrace>().map(|bt| bt.to_string());
    if let Some(trap) = err.downcast_ref::<Trap>() {
        if *trap == Trap::OutOfFuel {
            return Error::OutOfFuel {
                fuel: limits.fuel.unwrap_or(u64::MAX),
            };
        }
        return Error::Trap {
            message: trap.to_string(),
            backtrace,
            stderr: tail(stderr, 4096),
        };
    }
    if backtrace.is_some() {
        // A host function failed while wasm was on the stack.
        return Error::Trap {
            message: format!("{err:#}"),
            backtrace,
            stderr: tail(stderr, 4096),
        };
    }
    Error::Internal(format!("{err:#}"))
}

fn tail(c: &Captured, max: usize) -> String {
    let text = String::from_utf8_lossy(&c.bytes);
    let start = text.len().saturating_sub(max);
    let start = (start..text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    text[start..].to_owned()
}
