//! Rendering: the report model and metric series → HTML (templates), SVG and PNG charts, CSV.
//! Reads domain values only: no queries, no HTTP.
//!
//! [`html`] is the template environment (escaping, number filters, the one stylesheet);
//! [`pages`] renders each page from domain values; [`charts`] draws with plotters; [`csv`] is
//! the one CSV writer.

pub mod charts;
pub mod csv;
pub mod html;
pub mod pages;
