//! One module per section of the console.

pub mod assets;
pub mod devices;
pub mod discovered;
pub mod events;
pub mod form_view;
pub mod health;
pub mod query;
pub mod schemas;
pub mod streams;
