"""Every URL × every role (and anonymous) gets exactly the access it should."""

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from app.roles import ADMIN, ANNOTATOR, CURATOR, ROLES, has_role, user_role
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

# url name -> the lowest role that may GET it (None: any logged-in user)
PAGES = {"home": None, "seed-list": CURATOR, "status": ADMIN, "round-list": ADMIN}
RANK = {None: -1, **{r: i for i, r in enumerate(ROLES)}}


def test_the_migration_created_the_three_role_groups():
    assert set(Group.objects.values_list("name", flat=True)) == {ANNOTATOR, CURATOR, ADMIN}


def test_roles_are_ranked_and_superusers_are_admins():
    curator = UserFactory(role=CURATOR)
    assert user_role(curator) == CURATOR
    assert has_role(curator, ANNOTATOR) and has_role(curator, CURATOR) and not has_role(curator, ADMIN)
    nobody = UserFactory()
    assert user_role(nobody) is None and not has_role(nobody, ANNOTATOR)
    root = UserFactory(is_superuser=True)
    assert user_role(root) == ADMIN


@pytest.mark.parametrize("page", PAGES)
def test_anonymous_users_are_sent_to_the_login_page(client, page):
    response = client.get(reverse(page))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("role", [None, *ROLES])
@pytest.mark.parametrize("page", PAGES)
def test_each_role_gets_exactly_its_pages(client, page, role):
    client.force_login(UserFactory(role=role) if role else UserFactory())
    response = client.get(reverse(page))
    allowed = RANK[role] >= RANK[PAGES[page]]
    assert response.status_code == (200 if allowed else 403), (page, role)


@pytest.mark.parametrize("role", [None, *ROLES])
def test_navigation_shows_each_role_its_own_pages(client, role):
    client.force_login(UserFactory(role=role) if role else UserFactory())
    html = client.get(reverse("home")).content.decode()
    assert (reverse("seed-list") in html) == (RANK[role] >= RANK[CURATOR])
    assert (reverse("status") in html) == (RANK[role] >= RANK[ADMIN])


def test_only_admins_may_send_jobs(client):
    client.force_login(UserFactory(role=CURATOR))
    assert client.post(reverse("status-ping")).status_code == 403
    # require_POST comes before the role check: a GET is refused for its method, whoever asks.
    assert client.get(reverse("status-ping")).status_code == 405


def test_login_page_and_logout(client):
    assert client.get(reverse("login")).status_code == 200
    user = UserFactory(role=ANNOTATOR)
    response = client.post(reverse("login"), {"username": user.username, "password": "pw-for-tests"})
    assert response.status_code == 302 and response["Location"] == reverse("home")
    assert client.post(reverse("logout")).status_code == 302
    assert client.get(reverse("home")).status_code == 302
