//! SIGHUP: the reload a service manager (`systemctl reload`, `ExecReload=`)
//! and logrotate's `postrotate` ask for. It reopens the log file at its path
//! (a rotated log goes on in the new file) and reads the access rules
//! again (`--rules`), in the loop, never in the handler.
//!
//! A reload never stops the master, never drops a worker, and leaves
//! everything as it was when a part of it fails (an ERROR line says why).
//! The service manager is told `RELOADING=1` before and `READY=1` after
//! (with the figures as status), so `systemctl reload` and
//! `Type=notify-reload` see when it is done.
//! Workers already running keep the log descriptor they were given: their
//! last lines go to the old file. Pool processes (`--model prefork`), which
//! would keep it for ever, are renewed: idle ones now, busy ones when
//! their client leaves.

use crate::log::{self, error};

use super::event_loop::{Master, load_rules};

impl Master {
    pub(super) fn reload(&mut self) {
        self.notifier.reloading();
        log::reopen_on_sighup();
        self.reload_rules();
        self.renew_pool();
        self.notifier.ready(self.snapshot().figures());
    }

    /// Reads `--rules` again and puts the new rules in force at once,
    /// whole: connections already served are not touched, and a file that
    /// does not read or parse leaves the rules in force as they were.
    fn reload_rules(&mut self) {
        let Some(path) = &self.config.rules_file else {
            return;
        };
        match load_rules(path) {
            Ok(rules) => self.rules = rules,
            Err(e) => error!("rules not reloaded, the previous ones stay in force: {e}"),
        }
    }
}
