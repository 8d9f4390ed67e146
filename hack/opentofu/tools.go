//go:build tools

// Package tools pins the OpenTofu CLI (built by hack/terraform_cli.py and the Dockerfile):
// go build github.com/opentofu/opentofu/cmd/tofu, with go.sum verifying every module.
package tools

import _ "github.com/opentofu/opentofu/cmd/tofu"
