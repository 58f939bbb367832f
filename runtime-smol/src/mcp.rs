//! MCP bridge (being written).

use crate::client::Client;

/// Serves MCP over stdio for the gateway `client` is connected to.
pub async fn serve_stdio(_client: Client) -> std::io::Result<()> {
    Err(std::io::Error::other("the MCP bridge is not built yet"))
}
