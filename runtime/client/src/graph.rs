//! Interdependent tasks sent in one request.

use ferry_proto::v1 as pb;
use serde::Serialize;

use crate::client::request;
use crate::{ClientError, SubmitOptions, TaskRef};

/// Many interdependent tasks sent in one request: each [`Graph::add`]
/// returns a reference that later tasks of the graph take as an argument.
#[derive(Debug, Default, Clone)]
pub struct Graph {
    pub(crate) tasks: Vec<pb::SubmitRequest>,
}

impl Graph {
    pub fn new() -> Graph {
        Graph::default()
    }

    /// Adds a call; its result is the returned reference.
    pub fn add<A: Serialize + ?Sized>(
        &mut self,
        endpoint: &str,
        function: &str,
        export: &str,
        args: &A,
    ) -> Result<TaskRef, ClientError> {
        self.add_with(endpoint, function, export, args, &SubmitOptions::default())
    }

    pub fn add_with<A: Serialize + ?Sized>(
        &mut self,
        endpoint: &str,
        function: &str,
        export: &str,
        args: &A,
        options: &SubmitOptions,
    ) -> Result<TaskRef, ClientError> {
        let mut req = request(endpoint, function, export, args)?;
        options.apply(&mut req);
        self.tasks.push(req);
        Ok(TaskRef(format!("#{}", self.tasks.len() - 1)))
    }

    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }
}
