//! The run loop: bounds check → handler (with timeout) → events → next.
//! Written once, as a macro, so that `#[machine]` can expand it into each
//! machine's own code.

use super::Env;
use super::durable::{DurableContext, DurableMachine, StoreHook};
use super::step::Stop;
use crate::context::RunCore;
use crate::error::RunError;
use crate::machine::Dispatch;

/// The run loop, written once and expanded three ways: by `#[machine]`
/// for each machine's in-memory runs, with the machine's own `match` on
/// the state as `step` (each handler's future is awaited by the loop
/// itself, one layer as in a hand-written loop, and nothing in it is
/// generic over the machine); here for durable runs (`durable: true`,
/// with a checkpoint after every transition); and here for machines whose
/// `Dispatch` is written by hand (`step` calls [`Dispatch::step`]).
///
/// `step` is an expression of the state `$s`, the handlers `$h` and the
/// `&mut Cx` `$cx` giving a [`Step`]. The loop has no `.await` besides the
/// step's and, for durable runs, the checkpoints' (dead `.await`s would
/// shape the run's future and cost the in-memory loop 15-40%).
#[doc(hidden)]
#[macro_export]
macro_rules! __run_loop {
    (
        machine: $m:ty,
        env: $env:ident,
        handlers: $handlers:ident,
        state: $state:ident,
        core: $core:ident,
        hook: $hook:ident,
        durable: $durable:tt,
        step: |$s:ident, $h:ident, $cx:ident| $step:expr $(,)?
    ) => {{
        use $crate::__private::run as __gr;
        // `graph()` is called where it is used rather than kept in a local:
        // a local would live in the run's future, while the call inlines to
        // the address of a `static`, so the per-state lookups become
        // constant loads.
        let mut __limits = __gr::Limits::new::<$m>($env, &*$core);
        // One `Cx` for the whole loop, pointed at each step's state; the
        // run's counters are reached through it.
        let mut __cx = __gr::cx::<$m>($core, $env, &$state);
        loop {
            let __idx = <$m as __gr::Machine>::state_index(&$state);
            let __info = &<$m as __gr::Machine>::graph().states[__idx];
            __gr::at(&mut __cx, __idx);
            // Every entry into a non-terminal state is one step (for a
            // wait state, the signal that moves it on).
            if __info.kind != __gr::StateKind::Terminal {
                if let ::core::option::Option::Some(__hit) =
                    __gr::bound_hit($env, &__limits, &__cx, __info, __idx)
                {
                    $crate::__run_loop!(@wrap_up $durable, $m, $hook, $env, __cx, __limits,
                        $state, __info, __hit);
                    continue;
                }
                __gr::count_step(&mut __cx, __idx);
            }
            // Events, timeouts and per-step tracing spans share one slower
            // path, so the plain loop has one check for them.
            let __step = if __limits.guarded {
                if __limits.events {
                    __gr::entered::<$m>($env, &__cx, &mut __limits.clock, __info, &$state, $durable);
                }
                let __limit = __gr::time_limit($env, &__limits, &__cx, __info);
                let __span = __gr::step_span::<$m>(&__limits, &__cx, __info);
                let __step = {
                    let ($s, $h, $cx) = ($state, $handlers, &mut __cx);
                    __gr::guarded(async move { $step }, __limit, __span.clone()).await
                };
                __gr::record_usage(&__span, &__cx);
                if __limits.events {
                    // A durable run tells of its move once the checkpoint
                    // is written; an in-memory one now.
                    __gr::handler_returned::<$m>($env, &__cx, &mut __limits.clock, __info, &__step,
                        !$durable);
                }
                __step
            } else {
                let ($s, $h, $cx) = ($state, $handlers, &mut __cx);
                $step
            };
            match __step {
                __gr::Step::Moved { next: __next, decision: __decision } => {
                    let __via = __gr::moved_to::<$m>(&mut __cx, &__next, __decision.is_some());
                    // The move and the decision that picked it are one
                    // checkpoint, written before anyone is told.
                    $crate::__run_loop!(@save $durable, $m, $hook, $env, __cx, &__next,
                        ::core::option::Option::Some(__via), __decision.as_deref(), __info.name);
                    if $durable && __limits.events {
                        __gr::moved::<$m>($env, &__cx, &__limits.clock, __info.name, &__next, __via,
                            __decision);
                    } else if let ::core::option::Option::Some(__record) = __decision {
                        // Out of line: the drop of a record is large, and
                        // plain states never have one.
                        __gr::discard(__record);
                    }
                    $state = __next;
                }
                __gr::Step::Failed(__error) => match __gr::classify(__error) {
                    ::core::result::Result::Ok(__hit) => {
                        $crate::__run_loop!(@wrap_up $durable, $m, $hook, $env, __cx, __limits,
                            $state, __info, __hit);
                    }
                    ::core::result::Result::Err(__kind) => {
                        return ::core::result::Result::Err(
                            __gr::failed::<$m>($env, &__cx, __info.name, __kind),
                        );
                    }
                },
                __gr::Step::Wait(__waiting) => {
                    $crate::__run_loop!(@wait $durable, $m, $hook, $env, __cx, &__waiting,
                        __info.name);
                    if __limits.events {
                        __gr::waiting::<$m>($env, &__cx, __info.name);
                    }
                    return ::core::result::Result::Ok(__gr::Stop::Waiting(__waiting));
                }
                __gr::Step::Terminal(__terminal) => {
                    if __limits.events {
                        __gr::finished::<$m>($env, &__cx, __info.name);
                    }
                    return ::core::result::Result::Ok(__gr::Stop::Finished(__terminal));
                }
            }
        }
    }};
    // A bound was hit: on to the wrap-up state (checkpointed), or out with
    // the bound as the run's error.
    (@wrap_up $durable:tt, $m:ty, $hook:ident, $env:ident, $cx:ident, $limits:ident,
        $state:ident, $info:ident, $hit:ident) => {
        $state = $crate::__private::run::exhausted::<$m>($env, $info.name, &mut $cx, $hit)
            .map_err(|__e| *__e)?;
        $limits.wrap_up(&$cx);
        $crate::__run_loop!(@save $durable, $m, $hook, $env, $cx, &$state,
            ::core::option::Option::Some($crate::__private::run::DecidedVia::WrapUp),
            ::core::option::Option::None, $info.name);
    };
    // In memory: no checkpoint (and its arguments are not evaluated).
    (@save false, $($ignored:tt)*) => {};
    (@wait false, $($ignored:tt)*) => {};
    // A durable run's checkpoint, awaited; a store failure ends the run.
    (@save true, $m:ty, $hook:ident, $env:ident, $cx:ident, $state:expr, $via:expr,
        $decision:expr, $name:expr) => {
        $crate::__run_loop!(@write $m, $hook, $env, $cx, $state,
            $crate::runner::status_after_move($state), $via, $decision, $name);
    };
    (@wait true, $m:ty, $hook:ident, $env:ident, $cx:ident, $state:expr, $name:expr) => {
        $crate::__run_loop!(@write $m, $hook, $env, $cx, $state,
            $crate::store::RunStatus::Waiting, ::core::option::Option::None,
            ::core::option::Option::None, $name);
    };
    (@write $m:ty, $hook:ident, $env:ident, $cx:ident, $state:expr, $status:expr, $via:expr,
        $decision:expr, $name:expr) => {
        let __pending = $hook.save($state, &*$cx.run, $status, $via, $decision);
        $crate::runner::saved::<$m>($env, __pending, $cx.run.run_id, $cx.run.steps,
            $cx.run.usage, $name).await?;
        $hook.written($env, <$m as $crate::Machine>::NAME);
    };
}

/// The loop for machines whose [`Dispatch`] is written by hand: the same
/// loop, each step through [`Dispatch::step`].
pub(crate) async fn run_loop<M, H>(
    env: &Env,
    handlers: &H,
    mut state: M,
    core: &mut RunCore<M::Context>,
) -> Result<Stop<M>, RunError>
where
    M: Dispatch<H>,
    H: ?Sized + Sync,
{
    crate::__run_loop!(
        machine: M,
        env: env,
        handlers: handlers,
        state: state,
        core: core,
        hook: no_hook,
        durable: false,
        step: |s, h, cx| s.step(h, cx).await,
    )
}

/// The loop of a durable run: a checkpoint through `hook` after every
/// transition and when the run waits.
pub(super) async fn run_loop_durable<M, H>(
    env: &Env,
    handlers: &H,
    mut state: M,
    core: &mut RunCore<M::Context>,
    hook: &mut StoreHook,
) -> Result<Stop<M>, RunError>
where
    M: Dispatch<H> + DurableMachine,
    M::Context: DurableContext,
    H: ?Sized + Sync,
{
    crate::__run_loop!(
        machine: M,
        env: env,
        handlers: handlers,
        state: state,
        core: core,
        hook: hook,
        durable: true,
        step: |s, h, cx| s.step(h, cx).await,
    )
}
