//! The service in a deployment's shape rather than one process over one server: several
//! instances of the real binary over one database (`instances`), for live control through an
//! instance that does not bridge the call (`control`), draining on SIGTERM (`drain`) and an
//! instance that dies (`lost_instance`); and a MongoDB replica set of the test's own (several
//! members, started and stopped by the test), for what a failover does to calls (`stepdown`).

mod control;
mod drain;
mod instances;
mod lost_instance;
mod stepdown;
