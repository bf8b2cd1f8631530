package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/volgw/volgw/internal/control"
)

// runMaintenance runs the gateway's maintenance (GC, cache scrub) when its
// window starts, looking every interval until ctx ends; the window, in the
// gateway's time zone, is control's (RunMaintenance).
func runMaintenance(ctx context.Context, svc *control.Service, interval time.Duration, log *slog.Logger) {
	every(ctx, interval, func() {
		ran, rep, err := svc.RunMaintenance(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Error("maintenance window", "err", err, "gc_deleted_objects", rep.GCDeletedObjects,
				"scrubbed_slots", rep.ScrubbedSlots, "bad_slots", rep.BadSlots)
		case ran:
			log.Info("maintenance window: done", "gc_deleted_objects", rep.GCDeletedObjects, "gc_reclaimed_bytes", rep.GCReclaimedBytes,
				"scrubbed_slots", rep.ScrubbedSlots, "bad_slots", rep.BadSlots)
		}
	})
}
