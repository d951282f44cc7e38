import factory
from django.contrib.auth import get_user_model

from squads.models import (
    Api,
    Dependency,
    Membership,
    Person,
    Resource,
    Service,
    Squad,
    System,
    Tribe,
)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", "pw-for-tests-1")


class TribeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tribe
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"tribe-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.replace("-", " ").title())


class SquadFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Squad
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"squad-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.replace("-", " ").title())
    tribe = factory.SubFactory(TribeFactory)
    mission = "Make things better"


class PersonFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Person
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"person-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.replace("-", " ").title())
    email = factory.LazyAttribute(lambda o: f"{o.slug}@example.com")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    person = factory.SubFactory(PersonFactory)
    squad = factory.SubFactory(SquadFactory)
    role = "member"


class SystemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = System
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"system-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.title())


class ServiceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Service
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"service-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.replace("-", " ").title())
    description = "A service"
    owner = factory.SubFactory(SquadFactory)
    lifecycle = "production"
    tier = 2


class ApiFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Api
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"api-{n}")
    name = factory.LazyAttribute(lambda o: o.slug)


class ResourceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Resource
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"resource-{n}")
    name = factory.LazyAttribute(lambda o: o.slug)


class DependencyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Dependency

    source = factory.SubFactory(ServiceFactory)
    target_service = factory.SubFactory(ServiceFactory)
