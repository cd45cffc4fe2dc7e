//! `ui-tests/pass/unusual_traits.rs` with the generated server: a service implementing the
//! trait is served.

#![deny(warnings)]
#![allow(deprecated)]

include!("../../pass/shared/unusual_traits.rs");

#[derive(Clone)]
struct Impl;

impl Users for Impl {
    async fn a(&self, id: u64) -> ApiResult<u32> {
        Ok(id as u32)
    }

    async fn b(&self) -> Result<u32, errors::Error> {
        Ok(2)
    }

    async fn c(&self) -> Result<u32, crate::errors::Error> {
        Ok(3)
    }

    async fn d(&self) -> Result<(), CommsError> {
        Ok(())
    }

    async fn user(&self, id: u64) -> Result<OldUser, CommsError> {
        Ok(OldUser { id })
    }

    async fn create(&self, user: OldUser) -> Result<OldUser, CommsError> {
        Ok(user)
    }

    async fn e(self: &Self) -> Result<(), CommsError> {
        Ok(())
    }

    async fn p(&self, naïve: u32) -> Result<u32, CommsError> {
        Ok(naïve)
    }

    async fn q(&self, q: u32) -> Result<u32, CommsError> {
        Ok(q)
    }
}

fn main() {
    let _router: axum::Router = UsersServer::new(Impl).unverified().into_router();
}
