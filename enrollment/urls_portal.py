"""Participant portal pages of the enrollment app (mounted under /portal/, namespace "portal")."""

from django.urls import path

from enrollment import portal_views

ORGANIZATION = "o/<int:organization_id>/"

urlpatterns = [
    path(
        ORGANIZATION + "apply/",
        portal_views.enrollment_apply_programs,
        name="enrollment_apply_programs",
    ),
    path(
        ORGANIZATION + "apply/<int:program_id>/",
        portal_views.enrollment_apply,
        name="enrollment_apply",
    ),
    path(
        ORGANIZATION + "enrollments/<int:enrollment_id>/nomination/",
        portal_views.nomination_change,
        name="nomination_change",
    ),
    path(
        ORGANIZATION + "enrollments/<int:enrollment_id>/withdraw/",
        portal_views.enrollment_withdraw,
        name="enrollment_withdraw",
    ),
    path(ORGANIZATION + "audits/<int:audit_id>/", portal_views.audit_report, name="audit_report"),
    path(ORGANIZATION + "contacts/", portal_views.contacts, name="contacts"),
    path(ORGANIZATION + "contacts/add/", portal_views.contact_add, name="contact_add"),
    path(
        ORGANIZATION + "contacts/<int:contact_id>/methods/add/",
        portal_views.contact_method_add,
        name="contact_method_add",
    ),
    path(
        ORGANIZATION + "methods/<int:method_id>/send-code/",
        portal_views.contact_method_send_code,
        name="contact_method_send_code",
    ),
    path(
        ORGANIZATION + "methods/<int:method_id>/verify/",
        portal_views.contact_method_verify,
        name="contact_method_verify",
    ),
    path(
        ORGANIZATION + "methods/<int:method_id>/remove/",
        portal_views.contact_method_remove,
        name="contact_method_remove",
    ),
    path(
        ORGANIZATION + "methods/<int:method_id>/rotate-secret/",
        portal_views.contact_method_rotate_secret,
        name="contact_method_rotate_secret",
    ),
]
