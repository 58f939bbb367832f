//! Placeholder: filled by a later issue.
#![no_std]
