"""The customer directory's own panel on the Customer page: how many organizations it holds, its export (finance,
admin), filling it from the company's list of organizations and forgetting one (admin). Search is the box at the
top of the page (ui/organization.py)."""

from __future__ import annotations

from datetime import datetime, timezone

import streamlit as st

from services.auth.roles import Action, Actor, allowed
from services.bulk import import_file_ids
from services.desk import BillingDesk
from services.inputs import InputRefused
from services.payments.errors import InvalidInputError

from . import guard, organization


def directory_panel(desk: BillingDesk, actor: Actor, organization_id: str | None) -> None:
    """An expander under the customer, closed by default."""
    if said := st.session_state.pop("directory_forget", None):  # outside: the customer it was about is closed
        getattr(st, said[0])(said[1])
    with st.expander("Customer directory", icon=":material/contacts:"):
        try:
            size = desk.directory_size(actor)
        except Exception:  # the store isn't answering: the rest of the page still shows
            st.warning("The customer directory can't be read right now.", icon=":material/cloud_off:")
            return
        st.caption(f"The console keeps {size:,} organizations it has read, so the box above can find them by id, "
                   "e-mail or name. Each one is refreshed whenever it is read; opening one always reads the API.")
        if allowed(actor.role, Action.EXPORT_DIRECTORY):
            _downloads(desk)
        if allowed(actor.role, Action.MANAGE_DIRECTORY):
            _import(desk)
            if organization_id:
                _forget(desk, organization_id)


def _downloads(desk: BillingDesk) -> None:
    stem = f"customer-directory-{datetime.now(timezone.utc):%Y%m%d-%H%M}"
    with st.container(horizontal=True):
        st.download_button("Download directory CSV", guard.download(desk.directory_export, "csv"),
                           file_name=f"{stem}.csv", mime="text/csv", icon=":material/download:", on_click="ignore",
                           key="directory_csv")
        st.download_button("Download directory Excel", guard.download(desk.directory_export, "xlsx"),
                           file_name=f"{stem}.xlsx", icon=":material/table:", on_click="ignore",
                           mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                           key="directory_xlsx")


@guard.callback
def _start_import(desk: BillingDesk, *, actor: Actor) -> None:
    upload = st.session_state.get("directory_upload")
    if upload is None:
        st.session_state["directory_import"] = ("error", "Choose a CSV of organization ids first.")
        return
    try:
        parsed = import_file_ids(upload.getvalue())
        if not parsed.valid:
            raise InputRefused("file", "The file holds no organization ids (ids look like org_abc123).")
        job_id = desk.import_organizations(actor, parsed.valid)
    except (InputRefused, InvalidInputError) as refused:
        st.session_state["directory_import"] = ("error", refused.message)
        return
    skipped = parsed.invalid_count + len(parsed.duplicates) + parsed.over_limit
    st.session_state["directory_import"] = (
        "success", f"Reading {len(parsed.valid):,} organizations into the directory (job {job_id[:8]}; follow it on "
                   f"the Bulk lookup page)." + (f" {_lines(skipped)} skipped: not ids, repeated, or past the "
                                                 f"limit." if skipped else ""))


def _lines(count: int) -> str:
    return "1 line was" if count == 1 else f"{count:,} lines were"


def _import(desk: BillingDesk) -> None:
    st.file_uploader("Import the company's organization ids (CSV)", type=["csv"], key="directory_upload",
                     help="A column named organizationId, organization_id or id, else the first column. Each id is "
                          "read from the API by the job workers, at the API key's rate.")
    st.button("Import into the directory", key="directory_import_start", icon=":material/upload:",
              on_click=_start_import, args=(desk,))
    if said := st.session_state.pop("directory_import", None):
        getattr(st, said[0])(said[1])


@guard.callback
def _forget_now(desk: BillingDesk, organization_id: str, *, actor: Actor) -> None:
    try:
        gone = desk.forget_organization(actor, organization_id, st.session_state.get("forget_reason", ""))
    except (InputRefused, InvalidInputError) as refused:
        st.session_state["directory_forget"] = ("error", refused.message)
        return
    st.session_state["forget_reason"] = ""
    organization.close(organization_id)  # left open, the next run would read it again, and so bring it back
    st.session_state["directory_forget"] = (
        "success", f"{organization_id} is no longer in the directory; it comes back only if someone reads it again."
        if gone else f"{organization_id} was not in the directory.")


def _forget(desk: BillingDesk, organization_id: str) -> None:
    with st.popover(f"Forget {organization_id}", icon=":material/person_remove:"):
        st.write(f"Removes **{organization_id}** from the directory (searches stop finding it). Nothing changes at "
                 "the Payments API; reading it again brings it back. Recorded in the audit log with your reason.")
        st.text_input("Why", key="forget_reason", max_chars=300, placeholder="e.g. the customer asked to be forgotten")
        st.button(f"Forget {organization_id}", key="forget_confirm", type="primary",
                  on_click=_forget_now, args=(desk, organization_id))
