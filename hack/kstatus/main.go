// Command kstatus prints how Flux (kustomize-controller `wait: true`, the Helm controller and
// `flux` itself) reads the health of Kubernetes objects: sigs.k8s.io/cli-utils/pkg/kstatus, the
// library they call, applied to each object of a `kubectl get -o json` List read from stdin.
//
// Output: one JSON array, one entry per object, in input order:
// [{"kind": "...", "name": "...", "status": "Current|InProgress|Failed|Terminating", "message": "..."}]
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type verdict struct {
	Kind    string `json:"kind"`
	Name    string `json:"name"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

func main() {
	raw, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(err)
	}
	var list unstructured.UnstructuredList
	if err := list.UnmarshalJSON(raw); err != nil {
		fail(fmt.Errorf("stdin is not a Kubernetes List: %w", err))
	}
	out := []verdict{}
	for i := range list.Items {
		obj := &list.Items[i]
		res, err := status.Compute(obj)
		if err != nil {
			fail(fmt.Errorf("%s %s: %w", obj.GetKind(), obj.GetName(), err))
		}
		out = append(out, verdict{obj.GetKind(), obj.GetName(), string(res.Status), res.Message})
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "kstatus:", err)
	os.Exit(1)
}
