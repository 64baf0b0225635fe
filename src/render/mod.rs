//! Rendering: the report model and metric series → HTML (templates), CSV, text. Reads domain
//! values only: no queries, no HTTP.

pub mod csv;
