//! Integration tests: every scenario drives the real `mpecho` binary over
//! loopback, with real processes and real signals, through the shared
//! harness `mpecho_testkit` (`testkit/`).

mod capacity;
mod chat;
mod chat_client;
mod client;
mod descriptor_limit;
mod descriptors;
mod echo;
mod environment;
mod errors;
mod exec;
mod idle_timeout;
mod kubernetes;
mod limits;
mod logging;
mod master_death;
mod metrics;
mod models;
mod overload;
mod pidfds;
mod prefork;
mod privileges;
mod proxy_protocol;
mod rate_limits;
mod reaping;
mod reload;
mod resources;
mod rules;
mod rules_check;
mod shutdown;
mod signals_under_load;
mod systemd;
mod tier;
mod upgrade;
mod worker_executable;
