//! One module per section of the console.

pub mod schemas;
pub mod streams;
