//! SIGHUP: the reload a service manager (`systemctl reload`, `ExecReload=`)
//! and logrotate's `postrotate` ask for. It reopens the log file at its path
//! (a rotated log goes on in the new file); whatever else learns to reload
//! (access rules) is reloaded here too, in the loop, never in the handler.
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

use crate::log;

use super::event_loop::Master;

impl Master {
    pub(super) fn reload(&mut self) {
        self.notifier.reloading();
        log::reopen_on_sighup();
        self.renew_pool();
        self.notifier.ready(self.snapshot().figures());
    }
}
