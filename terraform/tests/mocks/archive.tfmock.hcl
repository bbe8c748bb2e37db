# Mock values of the archive provider shared by every test file (mock_provider source).

mock_data "archive_file" {
  defaults = {
    output_sha256 = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
    output_path   = "/dev/null"
  }
}
