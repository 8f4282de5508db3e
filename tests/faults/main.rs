//! Fault-injection suite: real `tasker api` and `tasker worker` processes
//! under a load of 2,000 tasks, one fault per scenario, then an audit in
//! PostgreSQL. It restarts the local PostgreSQL and flushes Redis, so it
//! runs only when `TASKER_FAULTS=1` (as `.ci/run` sets it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../support/mod.rs"]
mod support;

mod audit;
mod cluster;
mod load;
mod scenarios;

use std::process::ExitCode;

use scenarios::{Fault, Outcome};

fn main() -> ExitCode {
    if std::env::var_os("TASKER_FAULTS").is_none() {
        println!(
            "fault-injection suite not run: set TASKER_FAULTS=1 (it restarts PostgreSQL and flushes Redis)"
        );
        return ExitCode::SUCCESS;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let outcomes: Vec<Outcome> = Fault::ALL
        .into_iter()
        .map(|fault| {
            println!("fault scenario: {} …", fault.name());
            runtime.block_on(scenarios::run(fault))
        })
        .collect();
    print_table(&outcomes);
    let failed = outcomes.iter().filter(|o| !o.problems.is_empty()).count();
    println!("\n{} passed, {} failed", outcomes.len() - failed, failed);
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn print_table(outcomes: &[Outcome]) {
    println!(
        "\n| scenario | submitted | accepted | stored | completed | failed | re-run after a fault | finished twice | stale writes rejected | seconds to recover | verdict |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for o in outcomes {
        let verdict = if o.problems.is_empty() {
            "ok".to_owned()
        } else {
            o.problems.join("; ")
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {} |",
            o.fault.name(),
            o.submitted,
            o.accepted,
            o.stored,
            o.audit.completed,
            o.audit.failed,
            o.audit.rerun,
            o.audit.written_twice,
            o.stale_rejected,
            o.recovery.as_secs_f64(),
            verdict
        );
    }
}
