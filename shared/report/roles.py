"""The app roles of the reports API (app roles of this API's registration; see README)."""

READ_ROLE = "Reports.Read"
RUN_ROLE = "Reports.Run"
