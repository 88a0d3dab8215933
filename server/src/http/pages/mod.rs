//! The pages browsers see: HTML from maud templates, which escape every
//! value, under one CSP; every page works without JavaScript (the one
//! script adds local times, sorting in place and uploads). Never imports
//! `api/`.

pub mod add_machine;
pub mod admin;
pub mod alerts;
pub mod browse;
pub mod charts;
pub mod home;
pub mod icons;
pub mod layout;
pub mod login;
pub mod policy;
pub mod register;
pub mod versions;
