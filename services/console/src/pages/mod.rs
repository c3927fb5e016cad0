//! One module per section of the console.

pub mod assets;
pub mod devices;
pub mod form_view;
pub mod health;
pub mod streams;
