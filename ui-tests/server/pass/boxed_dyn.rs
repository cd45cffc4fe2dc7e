//! A trait object behind a pointer of its own (`Box<dyn Shape>`, as typetag deserializes one)
//! is a type the generated server names and parses a body into; so is a `Cow<'static, str>`.

use comms::{Error, service_client};

pub trait Shape: Send + Sync {
    fn area(&self) -> f64;
}

pub struct Square(f64);

impl Shape for Square {
    fn area(&self) -> f64 {
        self.0 * self.0
    }
}

impl serde::Serialize for dyn Shape {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.area())
    }
}

impl<'de> serde::Deserialize<'de> for Box<dyn Shape> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let area = f64::deserialize(deserializer)?;
        Ok(Box::new(Square(area.sqrt())))
    }
}

#[service_client(base_url = "http://shapes:8080", service_id = "billing", secret_env = "S")]
pub trait Shapes {
    #[post("/shapes")]
    async fn add(&self, #[body] shape: Box<dyn Shape>) -> Result<f64, Error>;

    // A body owning what it is parsed into, whatever lifetime its type names.
    #[post("/labels")]
    async fn label(&self, #[body] label: std::borrow::Cow<'static, str>) -> Result<(), Error>;

    #[post("/named")]
    async fn named(&self, #[form] named: Named<'static>) -> Result<(), Error>;
}

#[derive(serde::Serialize, serde::Deserialize)]
pub struct Named<'a> {
    pub name: std::borrow::Cow<'a, str>,
}

#[derive(Clone)]
struct Impl;

impl Shapes for Impl {
    async fn add(&self, shape: Box<dyn Shape>) -> Result<f64, Error> {
        Ok(shape.area())
    }

    async fn label(&self, _label: std::borrow::Cow<'static, str>) -> Result<(), Error> {
        Ok(())
    }

    async fn named(&self, _named: Named<'static>) -> Result<(), Error> {
        Ok(())
    }
}

fn main() {
    let _router: axum::Router = ShapesServer::new(Impl).unverified().into_router();
}
