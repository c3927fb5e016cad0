//! One module per section of the console.

pub mod streams;
